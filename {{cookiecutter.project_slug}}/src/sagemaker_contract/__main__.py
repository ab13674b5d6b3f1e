"""The image's entry point: SageMaker runs `docker run IMAGE train` or `docker run IMAGE serve`.

train        train on /opt/ml/input, save to /opt/ml/model (training.py, in a child that
             training_watch.py watches: a death by the OOM killer is explained)
serve        answer /ping and /invocations on port 8080 (server.py)
describe     print the project's declaration as JSON (hyperparameters, channels, metrics)
local-tree   write an /opt/ml tree for a local run: local-tree DIR --data DATA [--set k=v ...]

What runs on your machine instead (docs, package-model, check-os, push, publish) is
`python -m sagemaker_tools`, which the image does not hold.
"""

from __future__ import annotations

import logging
import signal
import sys

USAGE = "usage: IMAGE train | serve | describe | local-tree"


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # Until train or serve install their own handlers (after the heavy imports): as PID 1 in a
    # container, Python would otherwise ignore SIGTERM and wait for SIGKILL.
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [%(name)s] %(levelname)s %(message)s", stream=sys.stderr
    )
    command = args[0] if args else ""
    if command == "train":
        from .project import PRODUCT

        if PRODUCT == "model":
            print("this image is a model package: it only serves (SageMaker runs it with `serve`)", file=sys.stderr)
            return 2
        from .opt_ml import OptMl
        from .training_watch import run_watched

        def train() -> int:
            from .training import run  # in the watched child: the parent stays small

            return run()

        return run_watched(train, OptMl())
    if command == "serve":
        import gc

        from .listening import listen_early

        listen_early()  # Before the heavy imports: SageMaker wants connections accepted within 250 ms.
        # Imports and the model load create objects that live as long as the server: collecting
        # garbage among them is wasted work (about a tenth of the start-up). server.run() freezes them
        # and turns collection back on before the workers fork.
        gc.disable()
        from .server import run as serve

        return serve()
    if command == "describe":
        from .describe import main as describe

        return describe()
    if command == "local-tree":
        from .local import main as local_tree

        return local_tree(args[1:])
    shown = repr(command) if command else "nothing"
    print(f"{shown} is not a command this image runs. {USAGE} (SageMaker runs `train` and `serve`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
