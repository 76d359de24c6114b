"""One loaded version of a model: a SavedModel's signatures, their input specs and signature_def protos.

`Servable` loads a version folder with ``tf.saved_model.load``, replays its warm-up requests
(``assets.extra/tf_serving_warmup_requests``), runs a signature on numpy inputs (TF errors become
`ServingError` with their canonical code), answers TF Serving's metadata, and checks classify/regress
requests as TF Serving does. `keras_vae.export.repository.ModelRepository` decides which versions load.

Example:

>>> servable = Servable(1, "saved_models/vae/1")
>>> servable.run("serving_default", {"z": np.zeros([2, 16], np.float32)})["images"].shape
(2, 28, 28, 1)
>>> servable.metadata("vae")["model_spec"]
{'name': 'vae', 'version': '1', ...}
"""

import os

from keras_vae.export.rest_json import ServingError
from keras_vae.export.rest_request import InputSpec
from keras_vae.export.signatures import error_message
from keras_vae.export.warmup import read_warmup

# tf.errors.OpError.error_code -> canonical code name
_TF_CODES = {
    3: "INVALID_ARGUMENT",
    5: "NOT_FOUND",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    14: "UNAVAILABLE",
}


def json_proto(message):
    """A protobuf message as TF Serving's REST API writes it (field names as in the .proto, defaults included)."""
    from google.protobuf import json_format

    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class Servable:
    """One loaded SavedModel version: its signatures, their input specs, and the signature_def protos."""

    def __init__(self, version, path):
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        self.version = version
        self.path = path
        self.loaded = tf.saved_model.load(path)
        self.signatures = dict(self.loaded.signatures)
        self.input_specs = {
            name: {
                key: InputSpec(spec.dtype.as_numpy_dtype, tuple(spec.shape.as_list()))
                for key, spec in fn.structured_input_signature[1].items()
            }
            for name, fn in self.signatures.items()
        }
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved_model.ParseFromString(f.read())
        self.signature_defs = saved_model.meta_graphs[0].signature_def
        self._warm_up()

    def _warm_up(self):
        import tensorflow as tf

        for request in read_warmup(self.path):
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            self.run(request.model_spec.signature_name or "serving_default", inputs)

    def run(self, signature_name, inputs):
        """``{output: numpy array}`` from running a signature on ``{input: numpy array}``."""
        import tensorflow as tf

        try:
            outputs = self.signatures[signature_name](**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.OpError as err:
            raise ServingError(error_message(err), _TF_CODES.get(err.error_code, "INTERNAL")) from None
        return {k: v.numpy() for k, v in outputs.items()}

    def predict_specs(self, signature_name):
        """The input specs of a signature; TF Serving's REST error for an unknown one."""
        if signature_name not in self.input_specs:
            raise ServingError(f'Serving signature name: "{signature_name}" not found in signature def')
        return self.input_specs[signature_name]

    def check_classify_regress(self, verb, signature_name):
        """TF Serving's checks of a classify/regress signature (classifier.cc, regressor.cc), method check off."""
        signature = self.signature_defs.get(signature_name)
        if signature is None:
            raise ServingError(f"No signature was found with the name: {signature_name}")
        kind = "classification" if verb == "classify" else "regression"
        if len(signature.inputs) != 1:
            raise ServingError("Expected one input Tensor.")
        if verb == "classify" and len(signature.outputs) not in (1, 2):
            raise ServingError(f"Expected one or two output Tensors, found {len(signature.outputs)}")
        if verb == "regress" and len(signature.outputs) != 1:
            raise ServingError("Expected one output Tensor.")
        if "inputs" not in signature.inputs:
            raise ServingError(f"No {kind} inputs found in SignatureDef: {signature}")
        raise ServingError(f"'{verb}' with tf.Example inputs is not implemented by this server.", "UNIMPLEMENTED")

    def metadata(self, model_name):
        from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

        spec = model_pb2.ModelSpec(name=model_name)
        spec.version.value = self.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        return {"model_spec": json_proto(spec), "metadata": {"signature_def": json_proto(signature_map)}}
