"""The registry form's chains as the intake's ledger has them: the ``RegistryChanges`` port of
``services/domain/directory.py`` over ``Ledger.of_form``.

A chain is its versions under one ``root_id``; its current version is the last accepted (as the
store's ``current_facts`` takes the latest). A chain with a withdrawn version (``retracted``:
rejected in Central's review, say) is left out, as the store's retraction drops it; a
reinstatement marks its versions live again. Chains are ordered as the store orders them (the
current version's ``submitted_at``, then ``root_id``), so both sides fold the same list.
"""

from __future__ import annotations

from typing import Any

from services.domain.forms.library_registry import EVENT_MODEL, FORM_ID
from services.domain.registry import registry_change
from services.intake.ledger import Ledger, LedgerEntry


def ledger_registry_changes(ledger: Ledger) -> list[dict[str, Any]]:
    chains: dict[str, list[LedgerEntry]] = {}
    for entry in ledger.of_form(FORM_ID):
        chains.setdefault(entry.root_id, []).append(entry)
    current = [EVENT_MODEL.model_validate_json(versions[-1].event_json)
               for versions in chains.values() if not any(v.retracted for v in versions)]
    current.sort(key=lambda event: (event.submitted_at, event.root_id))
    return [registry_change(root_id=event.root_id, library_id=event.library_id, occurred_on=event.occurred_on,
                            payload=event.payload.model_dump(mode="json", exclude_none=True), areas=event.areas,
                            order=order)
            for order, event in enumerate(current)]
