"""Text normalisation and features shared by training and serving.

These functions are referenced by the pickled pipeline, so renaming or
moving them makes every saved model unloadable: change them only together
with a retrain.
"""
import re
import unicodedata

try:
    # Built by `pip install -e .` (setup.py); without it, the same in Python.
    from . import _normalize as _compiled
    if not hasattr(_compiled, "emoticon_start"):  # pragma: no cover - a stale build
        # Built before emoticon_start: the Python way, all of it, until rebuilt.
        _compiled = None
except ImportError:  # pragma: no cover - depends on the install
    _compiled = None

_URL = re.compile(r"(https?://\S+|www\.\S+)")
_MENTION = re.compile(r"@\w+")
# Three or more of the same character: "buenísimooo", "sooo good", "!!!!"
# (the same as (.)\1{2,}, which re searches half as fast).
_ELONGATED = re.compile(r"(.)\1\1+")

# Emoticons carry a lot of sentiment in short informal texts but are split
# apart by word tokenisers, so they are turned into words first.
# Each with characters one of which any match contains: most texts have
# none of them, and the check is much cheaper than the search.
_EMOTICONS = [
    (re.compile(r"(?:^|\s)(?::|;|=|x|X)-?(?:\)+|\]|D+|P|p|3)(?=\s|$)"), " emopos ", frozenset(":;=xX")),
    (re.compile(r"(?:^|\s)\(+-?(?::|;|=)(?=\s|$)"), " emopos ", frozenset("(")),
    (re.compile(r"(?:^|\s)(?::|;|=)'?-?(?:\(+|\[|/|\\|\|)(?=\s|$)"), " emoneg ", frozenset(":;=")),
    (re.compile(r"<3"), " emopos ", frozenset("<")),
    (re.compile(r"\b(?:x|X)[dD]+\b"), " emopos ", frozenset("xX")),
]
_EMOTICON_CHARACTERS = re.compile(
    "[" + re.escape("".join(sorted(set().union(*(needs for _, _, needs in _EMOTICONS))))) + "]")
# What a match of any of them begins with. Many texts have their characters
# without an emoticon (an x in a word, a colon or a bracket after one), and
# for those this one search replaces up to five. The replacements make no
# new match: they bring no such character, and what follows a match of the
# first three is whitespace already.
_EMOTICON_STARTS = re.compile(r"(?:^|\s)[:;=xX(]|<3|[xX][dD]")
_POSITIVE_EMOJI = set("😀😃😄😁😆😊🙂😍🥰😘😎🤩🥳👍👏🙌💪🎉❤💕💖💯✨🔥😂🤣😋🤗👌💚💙🙏⭐🌟")
_NEGATIVE_EMOJI = set("😞😔😟😕🙁☹😣😖😫😩😢😭😤😠😡🤬👎💩🤮🤢😒🙄😑😐💔😓😰😱🤦")
# Positive first: a character in both sets counts as positive.
_EMOJI_WORDS = {**{ord(c): " emoneg " for c in _NEGATIVE_EMOJI},
                **{ord(c): " emopos " for c in _POSITIVE_EMOJI}}

_TOKEN = re.compile(r"[a-zñç0-9_]+(?:'[a-z]+)?|[!?¡¿.,;:]")

_NEGATORS = {
    # English
    "not", "no", "never", "nothing", "nobody", "none", "neither", "nor",
    "cannot", "without", "hardly", "dont", "doesnt", "didnt", "isnt", "wasnt",
    "arent", "werent", "wont", "wouldnt", "cant", "couldnt", "shouldnt",
    "havent", "hasnt", "aint",
    # Spanish
    "nunca", "jamas", "ni", "tampoco", "sin", "nadie", "ningun", "ninguna",
    "ninguno", "nada",
}
_SCOPE_BREAKERS = {"but", "pero", "aunque", "sino", "however", "although", "though",
                   "!", "?", "¡", "¿"}
# Punctuation ends a negation's scope but is not a feature itself.
_PUNCTUATION = {".", ",", ";", ":"}
# Little words that sit between a negation and what it negates ("no me lo
# recomendaron", "not at all the"): left unmarked, and they do not use up
# the scope.
_TRANSPARENT = {"me", "te", "se", "lo", "la", "le", "les", "los", "las", "nos", "os",
                "it", "the", "a", "an", "at", "all", "that", "this", "very", "muy", "tan",
                "too", "so", "be", "is", "was", "es", "fue", "esta", "estuvo"}
_NEGATION_SCOPE = 3

# Words after these carry the verdict more often than words before them:
# "good but way too expensive", "caro, pero vale la pena".
_CONTRAST = {"but", "pero", "however", "embargo", "though", "igual"}
_CLAUSE_END = {"!", "?", "¡", "¿", "."}


def _strip_accents_slowly(text):
    """The definition of strip_accents (kept to test the fast one against)."""
    text = text.replace("ñ", "\0")
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.replace("\0", "ñ")


# Characters each table below keeps: far more than Spanish and English
# text uses, and a bound on what texts of rare characters can make a worker
# hold (every code point kept would be some 200 MiB per table).
_KEPT_CHARACTERS = 10_000


class _CharacterTable(dict):
    """A str.translate table whose entries turn(code) works out on first
    sight, at most _KEPT_CHARACTERS of them kept."""

    def __missing__(self, code):
        value = self.turn(code)
        if len(self) < _KEPT_CHARACTERS:
            self[code] = value
        return value


class _StrippedChars(_CharacterTable):
    """Each character as _strip_accents_slowly turns it. Character by
    character gives the same text as the whole string at once: NFKD
    decomposes each character on its own, and the only thing it reorders
    (marks of non-zero combining class) is exactly what gets dropped."""

    @staticmethod
    def turn(code):
        return _strip_accents_slowly(chr(code))


_STRIPPED = _StrippedChars()


class _NormalizedChars(_CharacterTable):
    """squeeze's table for a lower-cased text: each non-ASCII character as
    the end of normalize() turns it, an emoji into its word, ’ into ',
    anything else as _STRIPPED does. The same as the emoji translate() and
    the replace() before strip_accents: none of these characters has a
    case, so lower() first changes nothing."""

    @staticmethod
    def turn(code):
        value = _EMOJI_WORDS.get(code)
        if value is None:
            value = "'" if code == 0x2019 else _STRIPPED[code]
        return value


_NORMALIZED = _NormalizedChars()
# Latin-1, Latin Extended-A and B, ’ and the emoji kept from the start,
# whatever characters fill the tables first.
for _code in [*range(0x80, 0x250), 0x2019, *_EMOJI_WORDS]:
    _NORMALIZED[_code]
del _code


def strip_accents(text):
    """Remove accents but keep ñ, since people often type without accents."""
    if text.isascii() and "\0" not in text:
        return text
    return text.translate(_STRIPPED)


def normalize(text):
    """Lower-case, de-accented text with URLs, mentions, emoticons and emoji
    replaced by placeholder words and elongations shortened."""
    # Each search only where what it looks for can be: most texts have no
    # URL, mention or emoticon, and a substring test costs far less.
    if "http" in text or "www." in text:
        text = _URL.sub(" url ", text)
    if "@" in text:
        text = _MENTION.sub(" @user ", text)
    compiled = _compiled
    # Nine texts in ten have none of the emoticons' characters. Compiled:
    # one pass for where an emoticon may begin (re's two searches were 7 %
    # of a 100-text request); in Python, one search for any of their
    # characters costs less than a set of the text's characters.
    if (compiled.emoticon_start(text) if compiled is not None
            else _EMOTICON_CHARACTERS.search(text) and _EMOTICON_STARTS.search(text)):
        for pattern, word, needs in _EMOTICONS:
            for character in needs:
                if character in text:
                    text = pattern.sub(word, text)
                    break
    if compiled is not None:
        # Emoji, ’ and the last three steps in one pass through
        # sentiment/_normalize.c, which looks up only non-ASCII characters:
        # translate() looked up every one (normalize: 4.4 -> 2.3 us a text).
        return compiled.squeeze(text.lower(), _NORMALIZED)
    if text.isascii():
        # No emoji and no ’ to look for (isascii() is a flag, not a scan),
        # and lower() keeps ASCII text ASCII.
        text = text.lower()
    else:
        text = text.translate(_EMOJI_WORDS).lower().replace("’", "'")
    text = strip_accents(text)
    text = _ELONGATED.sub(r"\1\1", text)
    # The same as re.sub(r"\s+", " ", text).strip(): \s and str.split()
    # know the same whitespace characters.
    return " ".join(text.split())


def tokens(text):
    """Word and punctuation tokens of already normalised text, with "n't" folded in."""
    if "'" not in text:
        return _TOKEN.findall(text)
    return [t.replace("n't", "nt").replace("'", "") for t in _TOKEN.findall(text)]


def mark_negation(toks):
    """Words with those in a negation's scope prefixed NEG_, punctuation dropped.

    "no está nada mal" becomes no, NEG_esta, NEG_nada, NEG_mal, so the
    classifier can learn that a negated "mal" is not negative.
    """
    if _NEGATORS.isdisjoint(toks):
        # No negation at all (most texts): nothing to mark.
        return [tok for tok in toks if tok not in _PUNCTUATION]
    words = []
    scope = 0
    for tok in toks:
        if tok in _PUNCTUATION:
            scope = 0
            continue
        if tok in _SCOPE_BREAKERS:
            scope = 0
            words.append(tok)
            continue
        if scope and tok in _TRANSPARENT:
            words.append(tok)
        elif scope:
            words.append("NEG_" + tok)
            scope -= 1
        else:
            words.append(tok)
        if tok in _NEGATORS:
            scope = _NEGATION_SCOPE
    return words


def contrast_features(toks):
    """AFTER_BUT_-prefixed copies of the words that follow a contrast word."""
    if _CONTRAST.isdisjoint(toks):
        return []
    out = []
    after = False
    for tok in toks:
        if tok in _CLAUSE_END:
            after = False
        elif tok in _CONTRAST:
            after = True
        elif after and tok not in _PUNCTUATION:
            out.append("AFTER_BUT_" + tok)
    return out


class WordFeatures:
    """The word analyzer of the model: unigrams and bigrams with negation
    marking, contrast marking, and sentiment-lexicon hits.

    A lexicon hit adds LEX_POS1/LEX_POS2/LEX_NEG1/LEX_NEG2 (by strength),
    suffixed _NEGATED inside a negation's scope, so a word seen rarely in
    the training rows still counts for what the lexicon says it means.
    The lexicon travels inside the pickled model.
    """

    def __init__(self, lexicon=None):
        self.lexicon = dict(lexicon or {})

    def __call__(self, text):
        return self.from_normalized(normalize(text))

    def from_normalized(self, text):
        """The features of text that normalize() has already been through."""
        toks = tokens(text)
        words = mark_negation(toks)
        feats = list(words)
        feats.extend(map(" ".join, zip(words, words[1:])))
        feats.extend(contrast_features(toks))
        if self.lexicon:
            feats.extend(filter(None, map(self._lexicon_features().get, words)))
        return feats

    def _lexicon_features(self):
        """{word or NEG_word: its LEX_ feature}, worked out once from the
        lexicon (not pickled: the lexicon alone travels in the model, and
        is not changed after the analyzer is made)."""
        features = self.__dict__.get("_features")
        if features is None:
            features = {}
            for word, valence in self.lexicon.items():
                name = ("LEX_POS" if valence > 0 else "LEX_NEG") + ("2" if abs(valence) >= 2 else "1")
                features["NEG_" + word] = name + "_NEGATED"
                if not word.startswith("NEG_"):
                    # A word itself never starts so (tokens are lower case);
                    # such a key only ever matched as a negated word.
                    features[word] = name
            self._features = features
        return features

    def compiled_arguments(self):
        """What sentiment/_words.c needs, beside the vocabulary, to make
        from_normalized's features: the lexicon's features (or None) and
        the word sets of this module, which its table() takes, then the
        negation scope, which its columns() takes."""
        return (self._lexicon_features() if self.lexicon else None, _NEGATORS, _SCOPE_BREAKERS,
                _PUNCTUATION, _TRANSPARENT, _CONTRAST, _CLAUSE_END, _NEGATION_SCOPE)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_features", None)
        return state


_ES_HINTS = {
    "el", "la", "los", "las", "de", "que", "y", "en", "un", "una", "es", "por",
    "con", "para", "no", "lo", "se", "muy", "pero", "mas", "me", "mi", "esta",
    "este", "como", "todo", "nada", "bien", "mal", "fue", "son", "del", "al",
    "ya", "hay", "vos", "tu", "su", "le", "qué", "porque", "q", "xq", "tambien",
}
_EN_HINTS = {
    "the", "a", "an", "and", "is", "are", "was", "were", "of", "to", "in", "it",
    "this", "that", "i", "you", "my", "for", "with", "not", "but", "so", "be",
    "have", "has", "on", "at", "just", "very", "really", "its", "dont", "me",
    "what", "your", "we", "they", "our", "will", "would", "good", "bad",
}


def detect_language(text):
    """Best guess between "es" and "en" from function words and spelling.

    Only used to report and evaluate per language; the model itself is
    language-agnostic.
    """
    raw = text.lower()
    words = tokens(normalize(text))
    es = sum(w in _ES_HINTS for w in words) + 2 * sum(c in "ñ¿¡áéíóú" for c in raw)
    en = sum(w in _EN_HINTS for w in words)
    return "es" if es > en else "en"
