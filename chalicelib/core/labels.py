"""The name a search match is shown under."""


def label_for(key: str, metadata: dict[str, str]) -> str:
    """The `name` metadata, or the old project's label derived from the
    file name (the last part of a folder path): without its extension,
    `-` and `_` turned into spaces, capitalised."""
    if metadata.get("name"):
        return metadata["name"]
    name = key.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return stem.replace("-", " ").replace("_", " ").capitalize()
