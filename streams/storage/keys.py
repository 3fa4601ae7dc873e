"""Every Redis key and channel the engine uses, in one place.

Per customer: `state:{id}` (the worker's full state, JSON), `profile:{id}` (the hash websites read),
`seen:{id}` (applied event ids, for exactly-once). Per catalog item: `item:{id}`. Per input partition:
`wake:{partition}` (its customers by the stream time they are next due a re-scoring visit). Per app: model
checkpoints, worker stats, the forget channel. The Redis database is assumed to belong to the engine.

>>> customer_keys("c1")
['state:c1', 'profile:c1', 'seen:c1']
"""

from __future__ import annotations


def state_key(customer_id: str) -> str:
    return f"state:{customer_id}"


def profile_key(customer_id: str) -> str:
    return f"profile:{customer_id}"


def seen_key(customer_id: str) -> str:
    return f"seen:{customer_id}"


def wake_key(partition: int) -> str:
    """Sorted set of the customers of one input partition by the stream time they are next due a visit."""
    return f"wake:{partition}"


def item_key(item_id: str) -> str:
    """Hash of one catalog item as the items topic last said (streams/storage/catalog_store.py)."""
    return f"item:{item_id}"


def catalog_reject_key(topic: str, partition: int, offset: int) -> str:
    """Taken (SET NX) by the one worker that dead-letters a refused catalog record: every worker reads it."""
    return f"perso:catalog-reject:{topic}:{partition}:{offset}"


def promotion_key(name: str) -> str:
    """Set of the offer ids a promotion's budget was spent on (its size is what is spent; streams/storage/
    promotions.py). Kept by `rebuild`: a replay re-decides the same offer ids, which spend nothing twice."""
    return f"promotion:{name}"


def customer_keys(customer_id: str) -> list[str]:
    """Every key that holds something about one customer (what `forget` deletes)."""
    return [state_key(customer_id), profile_key(customer_id), seen_key(customer_id)]


def experiment_arm_key(experiment: str, arm: str) -> str:
    """Hash of one experiment arm's counters (customers, offers, feedback, conversions, revenue), written in the
    same atomic script as the states whose events they count."""
    return f"experiment:{experiment}:arm:{arm}"


# Experiments as configured, by name (JSON of schemas.experiments.ExperimentConfig); kept by `rebuild`.
EXPERIMENTS_KEY = "experiments"

# What `rebuild` deletes: everything derived from the input topics (per customer, and the experiments' counters,
# which a rebuild counts again from the events).
DERIVED_KEY_PATTERNS = ("state:*", "profile:*", "seen:*", "wake:*", "experiment:*", "item:*")


def checkpoint_key(app_id: str) -> str:
    return f"perso:checkpoint:{app_id}"


def checkpoint_meta_key(app_id: str) -> str:
    """A small hash beside the checkpoint: its age, without loading the models."""
    return f"{checkpoint_key(app_id)}:meta"


def stats_prefix(app_id: str) -> str:
    return f"perso:stats:{app_id}:"


def stats_key(app_id: str, host: str, pid: int) -> str:
    """One worker's stats hash, refreshed every second (read by `perso status`)."""
    return f"{stats_prefix(app_id)}{host}:{pid}"


def workers_key(app_id: str) -> str:
    """A sorted set of the stats hashes' keys by when each was last refreshed: how readers find the workers
    without a SCAN of the whole keyspace (streams/storage/worker_stats.py)."""
    return f"perso:workers:{app_id}"


def forget_channel(app_id: str) -> str:
    """Pub/sub channel on which `perso forget` tells running workers to drop a cached customer."""
    return f"perso:{app_id}:forget"


def audit_key(app_id: str) -> str:
    """Bounded stream of audited accesses over HTTP (customer reads, operators' actions)."""
    return f"perso:audit:{app_id}"


def dashboard_history_key(app_id: str) -> str:
    """The dashboard's time series: a list of JSON points, the newest first, bounded."""
    return f"perso:dashboard:{app_id}:history"


def dashboard_sampler_key(app_id: str) -> str:
    """Held for one interval by the worker that records the dashboard's next point (one point per interval)."""
    return f"perso:dashboard:{app_id}:sampler"
