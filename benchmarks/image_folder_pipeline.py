"""A folder of generated images through `keras_vae.training.data.image_folder`: header-pass time, input pipeline
images/s alone, training step images/s, and the peak resident memory of the whole process.

The folder (``--count`` JPEG images of 256x256 with smooth content, in 10 class sub-folders) is generated in
parallel into ``--folder`` and is resumable: images already there are kept. The model trains at ``--image-size``.

    python benchmarks/image_folder_pipeline.py --folder /tmp/folder100k            # 100,000 images
    python benchmarks/image_folder_pipeline.py --folder /tmp/f --count 2000 --steps 20
    python benchmarks/image_folder_pipeline.py --folder /tmp/f --generate-only
"""

import argparse
import multiprocessing
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

CLASSES = 10
SOURCE_SIZE = 256


def _image_path(folder, index):
    return os.path.join(folder, f"class_{index % CLASSES}", f"{index:06d}.jpg")


def _write_image(job):
    """One smooth 256x256 JPEG (a random 4x4 colour grid, upscaled bicubically), written atomically."""
    import numpy as np
    from PIL import Image

    from keras_vae.atomic_files import atomic_write

    folder, index = job
    path = _image_path(folder, index)
    if os.path.exists(path):
        return 0
    grid = np.random.RandomState(index).randint(0, 256, (4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(grid).resize((SOURCE_SIZE, SOURCE_SIZE), Image.BICUBIC)
    atomic_write(path, lambda temp: image.save(temp, format="JPEG", quality=85))
    return 1


def generate(folder, count, processes):
    """Writes the missing images of a ``count``-image folder; returns (images written, seconds)."""
    for label in range(CLASSES):
        os.makedirs(os.path.join(folder, f"class_{label}"), exist_ok=True)
    start = time.perf_counter()
    with multiprocessing.Pool(processes) as pool:
        written = sum(pool.imap_unordered(_write_image, ((folder, i) for i in range(count)), chunksize=256))
    return written, time.perf_counter() - start


def peak_resident_mb():
    """The process's peak resident set size (VmHWM), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(folder, image_size, batch_size, steps, pipeline_batches):
    import keras

    import keras_vae
    from keras_vae.training import image_folder as folders
    from keras_vae.training.data import image_folder

    start = time.perf_counter()
    scan = folders.scan_folder(folder, {"image_size": [image_size, image_size]})
    header_seconds = time.perf_counter() - start
    ds = image_folder(folder, image_size=image_size, batch_size=batch_size, shuffle=True)

    batches = iter(ds.repeat())
    next(batches)  # the first batch starts the pipeline's threads
    start = time.perf_counter()
    seen = sum(int(next(batches).shape[0]) for _ in range(pipeline_batches))
    pipeline_ips = seen / (time.perf_counter() - start)
    del batches

    vae = keras_vae.build_vae((image_size, image_size, 3), 32, "conv", likelihood="gaussian", seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    vae.fit(ds.repeat(), epochs=1, steps_per_epoch=3, shuffle=False, verbose=0)  # tracing
    start = time.perf_counter()
    vae.fit(ds.repeat(), epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    train_ips = batch_size * steps / (time.perf_counter() - start)
    return {"images": len(scan.files), "header_pass_seconds": round(header_seconds, 2),
            "pipeline_images_per_second": round(pipeline_ips, 1), "train_images_per_second": round(train_ips, 1),
            "peak_resident_mb": round(peak_resident_mb(), 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True, help="folder of the generated images (kept; resumable)")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50, help="timed training steps")
    parser.add_argument("--pipeline-batches", type=int, default=100, help="batches read to time the pipeline alone")
    parser.add_argument("--out", default=None, help="result JSON (default benchmarks/results/image_folder_pipeline.json)")
    args = parser.parse_args(argv)

    written, seconds = generate(args.folder, args.count, args.processes)
    print(f"generated {written} images in {seconds:.1f} s ({args.count - written} already there)", flush=True)
    if args.generate_only:
        return
    from bench_common import RESULTS_DIR, machine, write_result

    result = measure(args.folder, args.image_size, args.batch_size, args.steps, args.pipeline_batches)
    print("\n| images | header pass, s | pipeline images/s | training images/s | peak resident MB |\n"
          "| --- | --- | --- | --- | --- |")
    print(f"| {result['images']:,} | {result['header_pass_seconds']} | {result['pipeline_images_per_second']} | "
          f"{result['train_images_per_second']} | {result['peak_resident_mb']} |")
    write_result(args.out or os.path.join(RESULTS_DIR, "image_folder_pipeline.json"), {
        "benchmark": "image_folder_pipeline", "image_size": args.image_size, "batch_size": args.batch_size,
        "steps": args.steps, "pipeline_batches": args.pipeline_batches, "machine": machine(), **result})


if __name__ == "__main__":
    main()
