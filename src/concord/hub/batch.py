"""What one chunk of a run commits to the hub, as data: ``Hub.commit_batch`` writes it all in
one transaction (records, link state, conflicts, quarantine, the checkpoint), so a run killed
at any instant leaves either the whole chunk or none of it.

Each hub write names the feed position (``seq``) the engine planned it against. Under the
practice's write lock the hub compares it with the record's position now: a record somebody
else wrote meanwhile is not overwritten, and nothing of that record (its write, link state,
conflicts, notes) is committed; ``BatchOutcome.changed`` names it, and the engine leaves it
for the next run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from concord.hub.store import ArchiveRow, Checkpoint, FreshRow, RecordWrite


@dataclass(slots=True)
class Conflict:
    """One conflict note: which fields, who won, and the three contents at the time."""

    hub_id: str
    kind: str
    fields: list[str]
    winner: str
    kept: dict[str, Any]
    hub_content: str | None = None  # canonical JSON of the hub's side (projected)
    spoke_content: str | None = None
    base_content: str | None = None

    def row(self, link: str, entity: str) -> dict[str, Any]:
        return {"link": link, "entity": entity, "hub_id": self.hub_id, "kind": self.kind,
                "fields": json.dumps(self.fields), "winner": self.winner,
                "hub_content": self.hub_content, "spoke_content": self.spoke_content,
                "base_content": self.base_content, "kept": json.dumps(self.kept, default=str)}


#: a spoke item the link's selection leaves out: (ref, the version read or "", its identity,
#: its content's hash)
SpokeLeft = tuple[str, str, str | None, str]


@dataclass
class Batch:
    link: str
    entity: str
    by: str
    #: hub id -> the seq the record was at when planned (None: it did not exist); every
    #: record written below must be listed unless its id is fresh
    expected: dict[str, int | None] = field(default_factory=dict)
    records: list[RecordWrite] = field(default_factory=list)
    archive: list[ArchiveRow] = field(default_factory=list)  # hub_hash preset: unwritten content
    #: new records of a first sync with their link state, as rows (hub/store.py FreshRow);
    #: a UID-named one is listed in ``expected`` too
    fresh: list[FreshRow] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)  # archive rows to drop (unlinked)
    conflicts: list[Conflict] = field(default_factory=list)
    quarantine: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    left_out: list[tuple[str, int]] = field(default_factory=list)  # (hub id, seq) excluded
    selection: str = ""  # the fingerprint the left_out notes are taken under
    #: spoke items the selection leaves out, and the fingerprint they are noted under
    #: (``hub.exclusions.spoke_selection_key``)
    spoke_left: list[SpokeLeft] = field(default_factory=list)
    spoke_selection: str = ""
    drop_exclusions: list[str] = field(default_factory=list)  # notes planned again
    drop_intents: list[str] = field(default_factory=list)
    has_exclusions: bool = False  # skip the exclusion/quarantine cleanups when none can exist
    has_intents: bool = False
    has_quarantine: bool = False
    has_left: bool = False  # spoke items may be noted as left out (drop what links now)
    checkpoint: Checkpoint | None = None
    #: spoke ref -> version as this run listed it: a quarantined item that fails again at
    #: the same version is not counted or logged again
    versions: Mapping[str, str] = field(default_factory=dict)
    #: quarantined refs whose failure was transient (a 5xx, a timeout): tried again next run
    retry_now: list[str] = field(default_factory=list)


@dataclass(slots=True)
class BatchOutcome:
    changed: set[str]  # hub ids written by someone else since planning: nothing committed
    written: int  # hub records written
    conflicts: int
    quarantined: int = 0  # quarantine entries new or failing differently (not retried alike)
