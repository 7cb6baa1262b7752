"""Live pods behind the Kubernetes API: the pod collector's side of the live benchmark.

Run by tests/bench/bench_live.py for its Kubernetes API rows:

    python -m tests.bench.live_pods --pods 200 --rate 20 --start EPOCH --window-start EPOCH \
        --window-end EPOCH --kubeconfig PATH [--tls]

One process serves the Kubernetes API test server (tests/support/kube_api.py: pod list and watch, and
each pod's log streamed with `follow=true` as kube-apiserver does) and appends to every pod's log on its
own schedule (exponential gaps averaging 1/rate), the same ~250-byte JSON lines with `wt` as the file
rows' writers (tests/bench/live_writer.py), stamped by the "runtime" with the same time. A follower is
woken per line, as kubelet's log stream sends each write. It prints `ready <url>` once serving, and when
writing stops at `--window-end` one JSON line: lines written in total and within [window-start,
window-end), and its CPU seconds so far. It serves on until stopped (the collector still reads).
With `--tls` it serves HTTPS, as every real API server does, with a certificate from a CA of its own
(trustme) that the kubeconfig it writes trusts; the collector then decrypts every byte it reads.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from pathlib import Path

import orjson
import trustme

from tests.bench.live_writer import WriteSchedule, line_doc
from tests.support.kube_api import FakeKubeApi, FakePod

CONTAINER = "app"
NAMESPACE = "demo-system"
SELECTOR = "app=snowplow"


async def write_live(api: FakeKubeApi, pods: list[FakePod], args: argparse.Namespace) -> dict[str, float]:
    """Append to the pods' logs at `args.rate` lines/s each until the window ends; the totals."""
    schedule = WriteSchedule(len(pods), args.rate, args.start, args.window_start, args.window_end, len(pods))
    while True:
        wait = schedule.wait()
        if wait > 0:
            await asyncio.sleep(min(wait, 0.05))
            continue
        due = schedule.take()
        if due is None:
            return schedule.totals()
        i, n, write_ns = due
        _, doc = line_doc(write_ns, i, n)
        api.log(pods[i], CONTAINER, [doc], stamps=[write_ns])


async def serve(args: argparse.Namespace) -> None:
    context, ca_pem = None, None
    if args.tls:
        authority = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1").configure_cert(context)
        ca_pem = authority.cert_pem.bytes()
    api = await FakeKubeApi(max_piece=None).start(ssl_context=context)
    pods = [api.add_pod(f"checkout-{i:04d}", {"app": "snowplow"}, containers=(CONTAINER,), namespace=NAMESPACE)
            for i in range(args.pods)]
    api.write_kubeconfig(args.kubeconfig, NAMESPACE, ca_pem=ca_pem)
    print(f"ready {api.url}", flush=True)
    totals = await write_live(api, pods, args)
    print(orjson.dumps(totals).decode(), flush=True)
    await asyncio.Event().wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="lines per second per pod (mean)")
    parser.add_argument("--start", type=float, required=True, help="epoch seconds: first writes")
    parser.add_argument("--window-start", type=float, required=True)
    parser.add_argument("--window-end", type=float, required=True, help="epoch seconds: writing stops")
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--tls", action="store_true", help="serve HTTPS (the kubeconfig trusts its CA)")
    asyncio.run(serve(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
