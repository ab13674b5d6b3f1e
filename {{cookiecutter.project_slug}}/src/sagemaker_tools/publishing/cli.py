"""`python -m sagemaker_tools push|publish|release ...`: what `make push`, `make publish` and `make release` run."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from sagemaker_contract.errors import ProjectError

from . import PublishError
from .config import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sagemaker_tools", description=__doc__)
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("push", help="push the built image to ECR, or to --registry")
    push.add_argument("--image", required=True, help="the local image to push, e.g. decision-trees:local")
    push.add_argument("--registry", help="host:port of another registry (no AWS calls)")
    push.add_argument("--tag", help="the tag to push (default: <version>-<git sha>)")
    push.add_argument("--latest", action="store_true", help="also push the tag latest")
    push.add_argument("--force", action="store_true", help="push even if the tag exists")
    push.add_argument("--docker", default=os.environ.get("DOCKER", "docker"))
    publish = commands.add_parser("publish", help="create the algorithm or model package on SageMaker")
    publish.add_argument("--dry-run", action="store_true", help="write the requests under build/publish/ only")
    release = commands.add_parser("release", help="add the published version to your AWS Marketplace ML product")
    release.add_argument("--dry-run", action="store_true", help="write the change set under build/release/ only")
    release.add_argument("--product-id", help="the product, prod-... (default: [tool.sagemaker] product_id)")
    release.add_argument("--offer-id", help="its public offer, for new instance types' prices")
    release.add_argument("--restrict", metavar="VERSION", help="restrict this older version instead")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.project_dir.resolve(), os.environ)
        if args.command == "push":
            from .push import Docker, push

            push(
                settings,
                local_image=args.image,
                registry=args.registry,
                tag=args.tag,
                latest=args.latest,
                force=args.force,
                docker=Docker(args.docker),
            )
        elif args.command == "release":
            from . import release as releasing

            if args.offer_id:
                settings = dataclasses.replace(settings, offer_id=args.offer_id)
            if args.dry_run:
                releasing.dry_run(settings, args.product_id, restrict=args.restrict)
            elif args.restrict:
                releasing.restrict(settings, args.restrict, args.product_id)
            else:
                releasing.release(settings, args.product_id)
        elif args.dry_run:
            from .publish import dry_run

            dry_run(settings)
        else:
            from .publish import publish

            publish(settings)
    except (PublishError, ProjectError) as error:
        for line in getattr(error, "lines", [str(error)]):
            print(f"{args.command}: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{args.command}: interrupted; whatever AWS had started goes on (see the lines above)", file=sys.stderr)
        return 130
    return 0
