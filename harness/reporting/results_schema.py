"""The published schema of ``results.json`` (``schema/results.schema.json``), and the check against it."""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_PATH = Path(__file__).parent / "schema" / "results.schema.json"


def validate_results(results: dict) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``results`` follows the published schema."""
    import jsonschema

    jsonschema.validate(results, json.loads(SCHEMA_PATH.read_text()))
