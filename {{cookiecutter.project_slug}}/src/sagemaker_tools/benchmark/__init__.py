"""`benchmark`: latency and throughput of the built image as SageMaker runs it, or of a deployed
endpoint, written to build/benchmark/ (benchmark.json, benchmark.md, benchmark.png).

    python -m sagemaker_tools benchmark --image IMAGE --model MODEL [--concurrency "1 4 16"]
        [--workers "1 2 cpus"] [--seconds 2] [--p99-ms MS] [--body TYPE=FILE]      (make benchmark)
    python -m sagemaker_tools benchmark --endpoint NAME [--region REGION]       (make benchmark ENDPOINT=...)

Locally: `docker run IMAGE serve` with MODEL at /opt/ml/model, published on 127.0.0.1; the cold
start (to the first /ping 200); for each content type the image reads (the listing's sample
bodies), clients at each concurrency sending the same request for `--seconds`; p50/p90/p99 and
requests a second; the container's peak memory; then MODEL_SERVER_WORKERS at each count, and the
count recommended for this machine. With --endpoint: the same load through InvokeEndpoint.
`make listing` puts the latest table into the usage instructions (report.listing_section).

    load.py     the clients and the figures made from their latencies
    targets.py  the local image and the endpoint the load is sent to
    report.py   the JSON, the Markdown table, the PNG chart, the listing's section
    cli.py      the command: what is measured, in which order, and the recommendation

(Nothing is imported here: `listing` reads report.py without loading the rest.)
"""
