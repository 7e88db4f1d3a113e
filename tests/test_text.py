"""Normalisation and features that the model depends on."""
import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import corpus_texts, missing
from sentiment import text as text_module
from sentiment.text import (_ELONGATED, _EMOJI_WORDS, _EMOTICONS, _MENTION, _URL, WordFeatures,
                            _strip_accents_slowly, detect_language, mark_negation, normalize,
                            strip_accents, tokens)


@pytest.mark.parametrize("raw, expected", [
    ("BUENÍSIMOOO!!!", "buenisimoo!!"),
    ("Año  nuevo", "año nuevo"),
    ("mirá https://x.co/abc @juan", "mira url @user"),
    ("me encanta :) 😍", "me encanta emopos emopos"),
    ("qué asco :( 🤮", "que asco emoneg emoneg"),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_negation_scope_marks_the_negated_words_and_ends_at_punctuation():
    words = mark_negation(tokens(normalize("No me gustó nada, pero el final es bueno")))
    assert words[:3] == ["no", "me", "NEG_gusto"]
    assert "bueno" in words and "NEG_bueno" not in words


def test_nada_mal_is_a_negated_mal():
    assert "NEG_mal" in mark_negation(tokens(normalize("no está nada mal")))
    assert "NEG_bad" in mark_negation(tokens(normalize("not bad at all")))


def test_lexicon_hits_flip_under_negation():
    analyze = WordFeatures({"bueno": 2.0, "mal": -1.5})
    assert "LEX_POS2" in analyze("muy bueno")
    assert "LEX_POS2_NEGATED" in analyze("no es bueno")
    assert "LEX_NEG1_NEGATED" in analyze("nada mal")


def test_lexicon_features_in_the_order_of_the_words_and_not_pickled():
    analyze = WordFeatures({"bueno": 2.0, "mal": -1.5, "ok": 0.0, "nice": 0.9})
    assert [f for f in analyze("bueno, no mal pero ok nice") if f.startswith("LEX_")] == [
        "LEX_POS2", "LEX_NEG1_NEGATED", "LEX_NEG1", "LEX_POS1"]
    # A lexicon key that looks like a negated word does not hide the word's own entry.
    assert [f for f in WordFeatures({"bad": -1.0, "NEG_bad": 1.0})("not bad")
            if f.startswith("LEX_")] == ["LEX_NEG1_NEGATED"]
    # The word table worked out for speed stays out of the model file:
    # same bytes as an analyzer that never ran.
    assert pickle.dumps(analyze) == pickle.dumps(
        WordFeatures({"bueno": 2.0, "mal": -1.5, "ok": 0.0, "nice": 0.9}))


@pytest.mark.parametrize("raw", ["a\u00a0\u2003b\x1c c ", "\t\n x  y \r\n", "", "   "])
def test_normalize_collapses_every_unicode_space(raw):
    assert normalize(raw) == re.sub(r"\s+", " ", raw).strip()


def test_words_after_a_contrast_are_marked():
    feats = WordFeatures()("good but way too expensive")
    assert "AFTER_BUT_expensive" in feats and "AFTER_BUT_good" not in feats


@pytest.mark.parametrize("text, lang", [
    ("No me gustó nada la película", "es"),
    ("q buena peli jaja", "es"),
    ("I did not like the film at all", "en"),
    ("¿Dónde está la estación?", "es"),
])
def test_detect_language(text, lang):
    assert detect_language(text) == lang


@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40))
@settings(max_examples=400, deadline=None)
def test_fast_accent_stripping_is_the_same_as_its_definition(text):
    # The model's features depend on it: a difference would change answers.
    assert strip_accents(text) == _strip_accents_slowly(text)


@pytest.mark.parametrize("raw, expected", [
    ("x3 veces", "emopos veces"), ("XD jaja", "emopos jaja"), ("(: bien", "emopos bien"),
    ("mal :'(", "mal emoneg"), ("te quiero <3", "te quiero emopos"), ("=) ok", "emopos ok"),
    ("café\u0301 piñata \0", "cafe piñata ñ"), ("sin nada raro", "sin nada raro"),
])
def test_normalize_emoticons_and_accents(raw, expected):
    assert normalize(raw) == expected


def normalize_plainly(text):
    """normalize() as its docstring puts it, every step on every text: what
    its shortcuts (a search only where its characters are) must not change."""
    text = _URL.sub(" url ", text)
    text = _MENTION.sub(" @user ", text)
    for pattern, word, _ in _EMOTICONS:
        text = pattern.sub(word, text)
    text = text.translate(_EMOJI_WORDS).lower().replace("\u2019", "'")
    text = _strip_accents_slowly(text)
    text = _ELONGATED.sub(r"\1\1", text)
    return re.sub(r"\s+", " ", text).strip()


# Pieces the shortcuts are about: emoticons and their characters, URLs,
# mentions, emoji, accents, elongations, odd spaces.
PIECES = [":)", ":-(", ";)", "=)", ":'(", "(:", "<3", "xD", "XDD", "x3", ":P", ":]", ":/", "x", "X",
          ":", ";", "=", "(", "<", "http://a.b/c", "https://x.co", "www.ej.es", "@ana", "@", "😍",
          "🤮", "❤", "\u2019", "É", "ñ", "Ñ", "á", "ü", "\u0301", "ooo", "!!!", " ", "  ", "\t",
          "\u00a0", "\n", "\u3000", "buen", "mal", "no", "Σ", "a", "-", "e\u0301e", "éé", "ﬁ",
          "½", "\x00", "İ", "\x1c", "\u2028", "\n\n\n", "¿¿¿", "ñññ", "Ñ\u0303"]


# Texts of emoticon pieces among any characters.
EMOTICON_TEXTS = st.lists(st.sampled_from(PIECES) | st.characters(codec="utf-8"),
                          max_size=30).map("".join)


def normalize_in_python(text):
    """normalize() without sentiment/_normalize.c."""
    compiled, text_module._compiled = text_module._compiled, None
    try:
        return normalize(text)
    finally:
        text_module._compiled = compiled


@pytest.fixture
def compiled_text():
    if text_module._compiled is None:
        missing("sentiment/_normalize.c is not built (pip install -e .)")


@pytest.mark.usefixtures("compiled_text")
@given(EMOTICON_TEXTS)
@settings(max_examples=1500, deadline=None)
def test_normalize_is_its_plain_definition(text):
    # The model's features depend on it: a difference would change answers.
    expected = normalize_plainly(text)
    assert normalize(text) == expected
    assert normalize_in_python(text) == expected


@pytest.mark.usefixtures("compiled_text")
def test_normalize_is_its_plain_definition_on_the_corpus():
    texts = corpus_texts(None)
    assert len(texts) > 5000
    assert [t for t in texts if normalize(t) != normalize_plainly(t)] == []
    assert [t for t in texts if normalize_in_python(t) != normalize_plainly(t)] == []


@pytest.mark.usefixtures("compiled_text")
def test_normalize_is_its_plain_definition_for_every_character():
    # The compiled way lower-cases first and then turns emoji, ’ and
    # accents in one table: every non-ASCII character, between spaces and
    # between cased letters (lower() looks at its neighbours for Σ).
    codes = [c for c in range(0x80, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [separator.join(map(chr, codes[start:start + 256]))
             for separator in (" ", "A") for start in range(0, len(codes), 256)]
    assert [t for t in texts if normalize(t) != normalize_plainly(t)] == []


def test_the_character_tables_stay_bounded():
    # Texts of rare characters must not make a worker keep one entry per
    # code point: past the bound, characters are worked out each time.
    text = "".join(map(chr, range(0x4E00, 0x4E00 + 3 * text_module._KEPT_CHARACTERS)))
    assert normalize(text) == normalize_plainly(text)
    assert normalize(text) == normalize_plainly(text)  # again, past the bound
    assert len(text_module._NORMALIZED) <= text_module._KEPT_CHARACTERS
    assert len(text_module._STRIPPED) <= text_module._KEPT_CHARACTERS


@pytest.mark.usefixtures("compiled_text")
@given(EMOTICON_TEXTS)
@settings(max_examples=1500, deadline=None)
def test_emoticon_start_finds_what_the_regex_finds(text):
    # normalize() looks for emoticons only where this says one may begin.
    expected = text_module._EMOTICON_STARTS.search(text) is not None
    assert text_module._compiled.emoticon_start(text) is expected


@pytest.mark.usefixtures("compiled_text")
def test_emoticon_start_after_every_kind_of_space_and_on_the_corpus():
    start = text_module._compiled.emoticon_start
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    for space in spaces:
        for opener in ":;=xX(":
            assert start(f"ab{space}{opener}b")
        assert not start(f"ab{space}b")
    for text in ["x", "(", "<3", "xd", "aXDa", ":", "hola :", "\u3000="]:
        assert start(text), text
    for text in ["", "a:", "a(", "ax", "<", "< 3", "ax\nd", "\u00a0", "\u200b:"]:
        assert not start(text), text
    texts = corpus_texts(None)
    assert [t for t in texts if start(t) is not (text_module._EMOTICON_STARTS.search(t) is not None)] == []
    with pytest.raises(TypeError):
        start(b":)")


@pytest.mark.usefixtures("compiled_text")
def test_compiled_squeeze_refuses_bad_arguments():
    squeeze = text_module._compiled.squeeze
    assert squeeze("  Aaaa\t\tbbb  ", {}) == "Aaa bb"
    assert squeeze("x\x00", {}) == "x\x00"  # no lookup: the table gives nothing
    with pytest.raises(TypeError):
        squeeze(b"bytes", {})
    with pytest.raises(TypeError, match="str or None"):
        squeeze("é", {ord("é"): 101})
    with pytest.raises(ZeroDivisionError):
        squeeze("é", type("Table", (dict,), {"__missing__": lambda self, key: 1 / 0})())
