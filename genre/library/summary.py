"""What a catalog holds, in a few lines: songs per genre, how many are unsure, which files failed and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from genre.library.store import Catalog, model_label
from genre.library.tags import genre_name, inside

__all__ = ["Summary", "summarise"]

#: Failed files quoted by name; the rest are counted.
SHOWN_ERRORS = 10


@dataclass
class Summary:
    """Counts over the catalog's rows (those under ``roots`` when given)."""

    files: int = 0
    genres: Counter[str] = field(default_factory=Counter)
    unsure: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    missing: int = 0
    tagged: int = 0
    models: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        """The summary as text lines, for the console."""
        present = self.files - self.missing
        out = [f"{present} file(s) in the catalog" + (f", {self.missing} missing" if self.missing else "")]
        width = max([len(g) for g in self.genres] + [len("unsure")])
        for genre, count in sorted(self.genres.items(), key=lambda item: (-item[1], item[0])):
            out.append(f"  {genre:<{width}}  {count:>6}")
        out.append(f"  {'unsure':<{width}}  {self.unsure:>6}")
        out.append(f"  {'errors':<{width}}  {len(self.errors):>6}")
        for path, error in self.errors[:SHOWN_ERRORS]:
            out.append(f"    {path}: {error}")
        if len(self.errors) > SHOWN_ERRORS:
            out.append(f"    ... and {len(self.errors) - SHOWN_ERRORS} more (SELECT path, error FROM files)")
        if self.tagged:
            out.append(
                f"{self.tagged} file(s) carry a genre tag genre wrote (--restore-tags puts theirs back)"
            )
        for model, count in sorted(self.models.items()):
            out.append(f"answered by {model}: {count}")
        return out


def summarise(catalog: Catalog, roots: Sequence[str] | None = None) -> Summary:
    """Count the catalog's rows: present ones by genre (sure answers), unsure, failed; missing ones."""
    summary = Summary()
    for row in catalog.rows():
        if roots is not None and not inside(row["path"], roots):
            continue
        summary.files += 1
        summary.tagged += row["previous_tag"] is not None
        if row["missing"]:
            summary.missing += 1
        elif row["error"] is not None:
            summary.errors.append((row["path"], row["error"]))
        elif row["unsure"]:
            summary.unsure += 1
        else:
            summary.genres[genre_name(row["genre"])] += 1
        if row["model_name"] is not None and row["error"] is None and not row["missing"]:
            summary.models[model_label(row["model_name"], row["model_version"])] += 1
    return summary
