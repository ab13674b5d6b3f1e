"""Tools that run on your machine, never in the image: `python -m sagemaker_tools <command>`.

The image holds the runtime only (`sagemaker_contract`: train, serve, describe, local-tree);
everything here works on the project from outside it, and the Makefile calls it:

    docs README.md          write the declaration's tables into README.md     (make docs)
    package-model [...]     pack a model into build/model.tar.gz              (make package-model)
    check-os OS_RELEASE     check an image's OS against Marketplace's scan    (make check-os)
    base-os-table           print the template README's table of base OS choices
    sbom --image IMAGE      write a CycloneDX SBOM of the built image          (make sbom)
    push [...]              push the image to ECR or another registry         (make push)
    publish [--dry-run]     create the algorithm or model package             (make publish)
    release [...]           add that version to your Marketplace ML product   (make release)
    listing [...]           the buyer assets: usage, samples, notebook        (make listing)
    test-listing [...]      run the buyer notebook in SDK local mode          (make test-listing)
    benchmark [...]         latency, throughput, workers of image or endpoint (make benchmark)
"""
