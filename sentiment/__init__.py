"""sentiment-api: a small Flask service that labels Spanish and English text."""

LABELS = ("negative", "neutral", "positive")

# Blueprints that serve pages to people: their errors and the sign-in
# challenge are HTML pages, not JSON.
PAGE_BLUEPRINTS = frozenset({"web", "history", "batch", "insight", "lang"})
