"""Find the person and household ids that a feed store gives resident identity numbers.

Scores and alerts name households by hashed ids, and the store keeps no raw
identity number. Staff who hold a household's identity numbers (from their
own rolls or a visit) find its household id here by hashing them with the
store's key and looking them up in the household roster. The reverse, from
an id back to a number, is impossible by design.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from warning.feeds.identity import IdentityHasher, identity_problems, mask_identities
from warning.feeds.partitions import Layout
from warning.feeds.pipeline import SECRET_VARIABLE, FeedIngestError
from warning.feeds.spec import ExportSpec

LOOKUP_COLUMNS = ("identity_number", "problem", "person_id", "household_id", "is_head")


def read_roster(store_dir: Path, specs: list[ExportSpec], hasher: IdentityHasher) -> pd.DataFrame:
    """Return the person-to-household links of every roster export stored in ``store_dir``.

    Raises ``FeedIngestError`` when ``hasher`` has another key than the store
    was built with, whose ids would match no one.
    """
    layout = Layout.load(Path(store_dir) / "feeds")
    if layout is not None and layout.key_fingerprint not in (None, hasher.fingerprint()):
        raise FeedIngestError(
            f"{SECRET_VARIABLE} is not the key that store {store_dir} was built with; set the store's key"
        )
    state_dir = Path(store_dir) / "feeds" / "state"
    parts = []
    # Heads first, as feed ingest links them, so that the members export wins.
    for role, person in (("households", "key_0"), ("members", "person")):
        for spec in specs:
            path = state_dir / f"{spec.feed}.parquet"
            if spec.role == role and path.is_file():
                frame = pd.read_parquet(path, columns=[person, "household_id"])
                parts.append(frame.rename(columns={person: "person"}))
    if not parts:
        raise FileNotFoundError(f"{state_dir} has no household roster: ingest a delivery of feeds first")
    return pd.concat(parts, ignore_index=True).dropna().drop_duplicates("person", keep="last")


def lookup_identities(
    numbers: pd.Series, roster: pd.DataFrame, hasher: IdentityHasher, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Return, in input order, each number masked, why it is invalid, its person id and its household.

    ``household_id`` is missing for a valid number that the roster does not
    list. ``is_head`` is true for the number the household is named after.
    """
    numbers = numbers.astype("string").str.strip().str.upper().reset_index(drop=True)
    problems = identity_problems(numbers, as_of).fillna("")
    valid = numbers.where(problems == "")
    persons = hasher.hash_series("person", valid)
    links = pd.Series(roster["household_id"].to_numpy(), index=pd.Index(roster["person"].astype("string")))
    households = persons.map(links).astype("string")
    heads = hasher.hash_series("household", valid)
    return pd.DataFrame(
        {
            "identity_number": mask_identities(numbers),
            "problem": problems,
            "person_id": persons,
            "household_id": households,
            "is_head": (households.notna() & (households == heads)).fillna(False).astype(bool),
        },
        columns=list(LOOKUP_COLUMNS),
    )
