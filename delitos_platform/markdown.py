"""Values from the source inside Markdown metadata: shown as they were written, never read as Markdown.

A department's name or a column's name comes from the portal. In a Markdown table a ``|`` and a line break would
forge a row (a figure nobody computed), ``[x](javascript:…)`` would become a link and ``<…>`` HTML: every such
character is escaped with a backslash (CommonMark's escape, which GitHub-flavoured tables honour too) and every
line break becomes a space.
"""

from __future__ import annotations

import re

_MARKUP = re.compile(r"([\\`*_\[\]()<>|!~&$#{}])")
_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def markdown_text(value: object) -> str:
    """``value`` as literal text on one line of Markdown (a table cell, a list item, a sentence)."""
    return _MARKUP.sub(r"\\\1", _BREAKS.sub(" ", str(value)))
