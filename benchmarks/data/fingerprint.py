"""The data fingerprint a run records: what it trained on, read from the prepared cache.

It holds the clips per split against the listed ones and a digest of the cache's data key (the
preprocessing, layout and clip lists, not the cache format) and of the clips actually used (names,
labels, splits). Where the files lie is left out, so a copy moved to another folder or machine keeps
its fingerprint; a copy with other clips never does.
"""
from __future__ import annotations

import hashlib
from collections import Counter


def data_fingerprint(key: str, clip_digest: str, splits: tuple[str, ...], listed: dict[str, int]) -> dict:
    """``key``: the cache's data key; ``clip_digest`` and ``splits``: of the clips used."""
    clips = Counter(splits)
    return {"digest": hashlib.sha1(f"{key} {clip_digest}".encode()).hexdigest()[:16],
            "clips": {split: clips[split] for split in listed}, "listed": dict(listed),
            "left_out": sum(listed.values()) - len(splits)}


def fingerprint_tag(fingerprint: dict) -> str:
    """The suffix of the run directories trained on this data."""
    return f"data{fingerprint['digest'][:8]}"


def fingerprint_lines(fingerprints: list[dict | None]) -> list[str]:
    """Table header lines: how many clips each split had, per fingerprint; a partial copy loudly."""
    lines = []
    for fp in {f["digest"]: f for f in fingerprints if f}.values():
        splits = sorted(fp["listed"], key=lambda split: (split != "train", split))  # records sort their keys
        counts = ", ".join(f"{split} {fp['clips'][split]:,} of {fp['listed'][split]:,}" for split in splits)
        if fp["left_out"]:
            lines.append(f"- **PARTIAL DATA**: {counts} listed clips; {fp['left_out']:,} missing or unreadable clips "
                         f"left out (data fingerprint `{fp['digest']}`). Not the full dataset: not comparable "
                         "with published numbers")
        else:
            lines.append(f"- data: {counts} listed clips, complete (data fingerprint `{fp['digest']}`)")
    return lines
