"""Export the JSON Schema of every contract so producers in other languages can validate."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.dead_letter import DeadLetter
from schemas.events import ClickEvent, OfferFeedback, PurchaseEvent
from schemas.experiments import ExperimentConfig
from schemas.items import CatalogItem
from schemas.offers import Offer
from schemas.profile import ProfileUpdate

CONTRACTS: dict[str, type[BaseModel]] = {
    "click_event": ClickEvent,
    "purchase_event": PurchaseEvent,
    "offer_feedback": OfferFeedback,
    "offer": Offer,
    "profile_update": ProfileUpdate,
    "dead_letter": DeadLetter,
    "experiment": ExperimentConfig,
    "catalog_item": CatalogItem,
}


def export_json_schemas(out_dir: Path) -> list[Path]:
    """Write one `<name>.schema.json` per contract into out_dir; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in CONTRACTS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        path = out_dir / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
