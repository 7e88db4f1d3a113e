"""sentiment-api: a small Flask service that labels Spanish and English text."""

LABELS = ("negative", "neutral", "positive")
