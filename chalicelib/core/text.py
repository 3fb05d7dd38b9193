"""Text a client names things with (image keys, people's names): no
character that is not shown as itself. Control characters (Cc), format
characters (Cf: bidi overrides and isolates, zero-width spaces and joiners,
the BOM), line and paragraph separators (Zl, Zp) and lone surrogates (Cs)
change how the text around them reads, or hide what it says: a right-to-left
override in a name reverses the console's next text."""

import unicodedata

HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def hidden_characters(text: str) -> list[str]:
    """The characters of `text` that are not shown as themselves, as U+XXXX."""
    return [f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch) in HIDDEN_CATEGORIES]
