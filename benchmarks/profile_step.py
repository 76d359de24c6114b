"""Where a training step's time goes: the TF profiler's op trace of this project's `fit`, summed by op.

Profiles ``--steps`` steps of the second epoch of the peers' networks (``mlp``: 784-400-20; ``conv``: the
keras.io network, conv 32/64, dense 16, latent 2) on statically binarized MNIST, batch 128, with
`tf.profiler.experimental`, then reads the trace (the ``.xplane.pb`` the profiler writes, through the
protobuf TensorFlow ships) and sums the op events on the executor's threads: by op type and by group (matrix products,
convolutions, optimizer updates, the non-finite guard's checks, random numbers, data input, the rest). The
share is of the summed op time, which on 2 threads can exceed the wall time.

    python benchmarks/profile_step.py --models mlp conv --steps 50
"""

import argparse
import collections
import glob
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from bench_common import RESULTS_DIR, machine, write_result  # noqa: E402
from peers import BATCH_SIZE, binarized_mnist, project_vae  # noqa: E402

# Op type -> group, first match wins (matched on the op type's prefix).
GROUPS = (
    ("matrix products", ("MatMul", "BatchMatMul", "_FusedMatMul")),
    ("convolutions", ("Conv2D", "_FusedConv2D", "Conv2DBackprop", "DepthwiseConv")),
    ("optimizer update", ("ResourceApply", "AssignVariable", "AssignAddVariable", "AssignSubVariable",
                          "ReadVariableOp", "ResourceScatter")),
    ("non-finite checks", ("IsFinite", "All", "Any")),
    ("random numbers", ("StatelessRandom", "RandomStandardNormal", "RandomUniform", "StatelessTruncated")),
    ("data input", ("IteratorGetNext", "Iterator", "OptionalGetValue", "OptionalHasValue")),
    ("control flow", ("If", "StatelessIf", "While", "Switch", "Merge", "Identity", "NoOp")),
)


def group_of(op_type):
    for group, prefixes in GROUPS:
        if op_type.startswith(prefixes):
            return group
    return "elementwise and other"


def op_times(logdir):
    """``{op type: summed microseconds}`` over the host's TF op events in the profile under ``logdir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise RuntimeError(f"the profiler wrote no .xplane.pb under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        metadata = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads
                continue
            for event in line.events:
                name = metadata[event.metadata_id].name  # an op is "scope/op_name:OpType"
                if ":" in name and not name.startswith("ExecutorState"):  # not the executor's own spans
                    totals[name.rsplit(":", 1)[-1]] += event.duration_ps / 1e6
    if not totals:
        raise RuntimeError("the profile holds no op events on the executor's threads of /host:CPU")
    return totals


def profile(model_name, images, steps, optimizer="fused"):
    import keras
    import tensorflow as tf

    import keras_vae

    model = project_vae("project-conv" if model_name == "conv" else "project-mlp")
    model.compile(optimizer=keras_vae.FusedAdam(1e-3) if optimizer == "fused" else keras.optimizers.Adam(1e-3))
    model.fit(images, batch_size=BATCH_SIZE, epochs=1, verbose=0)  # traced and warm
    subset = images[: steps * BATCH_SIZE]
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        model.fit(subset, batch_size=BATCH_SIZE, epochs=1, verbose=0, shuffle=False)
        wall = time.perf_counter() - started
        tf.profiler.experimental.stop()
        totals = op_times(logdir)
    total = sum(totals.values())
    groups = collections.Counter()
    for op, us in totals.items():
        groups[group_of(op)] += us
    return {
        "model": model_name, "steps": steps, "wall_ms_per_step": round(1e3 * wall / steps, 3),
        "op_ms_per_step": round(total / 1e3 / steps, 3),
        "groups": {g: round(us / total, 4) for g, us in groups.most_common()},
        "top_ops": [{"op": op, "share": round(us / total, 4), "ms_per_step": round(us / 1e3 / steps, 4)}
                    for op, us in totals.most_common(25)],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.path.join(os.path.dirname(HERE), "..", "shared", "data"))
    parser.add_argument("--models", nargs="+", default=["mlp", "conv"], choices=["mlp", "conv"])
    parser.add_argument("--steps", type=int, default=50, help="profiled steps (batch 128)")
    parser.add_argument("--optimizer", choices=["fused", "keras"], default="fused",
                        help="keras_vae.FusedAdam (what keras-vae train uses) or keras.optimizers.Adam")
    parser.add_argument("--images", type=int, default=12800, help="images of the warm-up epoch")
    parser.add_argument("--out", default=os.path.join(RESULTS_DIR, "profile_step.json"))
    args = parser.parse_args(argv)
    images = binarized_mnist("train", args.data_dir)[: max(args.images, args.steps * BATCH_SIZE)]
    rows = [profile(name, images, args.steps, args.optimizer) for name in args.models]
    for row in rows:
        print(f"\n{row['model']}: {row['wall_ms_per_step']} ms per step (wall), {row['op_ms_per_step']} ms of ops")
        print("| group | share of op time |\n| --- | --- |")
        for group, share in row["groups"].items():
            print(f"| {group} | {100 * share:.1f}% |")
        print("| op | share | ms per step |\n| --- | --- | --- |")
        for op in row["top_ops"]:
            print(f"| {op['op']} | {100 * op['share']:.1f}% | {op['ms_per_step']} |")
    write_result(args.out, {"benchmark": "train step profile", "machine": machine(), "rows": rows,
                            "load_average_1min": os.getloadavg()[0], "args": vars(args)})


if __name__ == "__main__":
    main()
