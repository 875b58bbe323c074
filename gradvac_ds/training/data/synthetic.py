"""Synthetic multilingual parallel corpus with planted language families.

Every sentence renders a *meaning*: an agent, a verb in one of three tenses, a patient, optional
adjectives and plural number on both nouns, and an optional place phrase (relation + noun).
Each language is a lexicon (concept -> word root) plus a grammar (constituent order, adjective
position, prepositions or postpositions, an optional article, suffixes for plural, tense and
object case). A parallel pair is one meaning rendered in two languages.

How relatedness is planted (two knobs, ``family_divergence`` = d_f and ``language_divergence`` = d_l):

1. A *proto* lexicon draws one random root (1-3 CV/CVC syllables) per concept.
2. Each **family** replaces each proto root with a fresh random root with probability d_f, then
   applies ``round(d_f * 10)`` regular sound changes (a segment rewritten as another segment of
   the same class, everywhere), and draws its own grammar: constituent orders are dealt from a
   seeded shuffle of SVO, SOV, VSO, VOS, OVS, OSV (distinct while there are at most six families),
   OV orders take postpositions and an object-case suffix, VO orders prepositions; adjective
   position, article and suffixes are random per family.
3. Each **language** copies its family, replaces each root with probability d_l, applies
   ``round(d_l * 10)`` further consonant changes (to roots and suffixes alike) and flips the
   adjective position with probability d_l.

So with d_l < d_f two languages of one family share most word forms and their whole grammar,
while languages of different families share only the proto roots that escaped replacement *and*
every sound change on both sides, which is few. Raising d_l toward d_f blurs the families; the
defaults (0.6, 0.1) give a within-family word-type Jaccard of roughly 0.2-0.65 and a
cross-family one below 0.03 (tests/data/test_synthetic.py checks the margin).

The **pivot** (default code ``en``) has its own independent lexicon and an English-like grammar:
SVO, adjective before noun, prepositions, an article and a future auxiliary. It is equally far
from every family, so the pivot side carries no family signal.

Synthetic codes use the ISO 639 local-use range: family *i* and member *j* give ``q`` + letter *i*
+ letter *j* (``qaa``, ``qab``, ``qba``...). Everything is drawn from ``random.Random`` seeded with
strings derived from ``seed``, so output is identical across runs and platforms.
"""

import random
from dataclasses import dataclass, field

from gradvac_ds.training.data.corpus import FilterConfig, ParallelCorpus
from gradvac_ds.training.data.errors import DataConfigError, check_integer_ranges
from gradvac_ds.training.data.languages import check_language_code

_CONSONANTS = "ptkbdgmnlrsfvzh"
_VOWELS = "aeiou"
_SEGMENTS = len(_CONSONANTS) + len(_VOWELS)
_ORDERS = ("SVO", "SOV", "VSO", "VOS", "OVS", "OSV")
_RELATIONS = 6
_TENSES = ("present", "past", "future")


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of the synthetic corpus.

    Attributes:
        num_families: language families (1-20).
        languages_per_family: languages in each family (1-26).
        train_sentences / valid_sentences / test_sentences: sentence pairs per language pair and split.
        lexicon_size: content concepts (nouns 50 %, verbs 30 %, adjectives 20 %), i.e. word roots
            per language before inflection.
        family_divergence: d_f in [0, 1], see the module docstring.
        language_divergence: d_l in [0, 1], see the module docstring.
        pivot: code of the pivot language.
        zipf_exponent: concepts are drawn with probability proportional to rank^-exponent.
        seed: everything is a function of it.
    """

    num_families: int = 3
    languages_per_family: int = 2
    train_sentences: int = 2000
    valid_sentences: int = 200
    test_sentences: int = 200
    lexicon_size: int = 300
    family_divergence: float = 0.6
    language_divergence: float = 0.1
    pivot: str = "en"
    zipf_exponent: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        ranges = {
            "num_families": (self.num_families, 1, 20),
            "languages_per_family": (self.languages_per_family, 1, 26),
            "train_sentences": (self.train_sentences, 1, 10**7),
            "valid_sentences": (self.valid_sentences, 0, 10**6),
            "test_sentences": (self.test_sentences, 0, 10**6),
            "lexicon_size": (self.lexicon_size, 10, 10**6),
        }
        check_integer_ranges("synthetic", ranges)
        for name in ("family_divergence", "language_divergence"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DataConfigError(f"synthetic.{name}: must be in [0, 1], got {value!r}")
        if self.zipf_exponent < 0:
            raise DataConfigError(f"synthetic.zipf_exponent: must be >= 0, got {self.zipf_exponent!r}")
        check_language_code(self.pivot, "synthetic.pivot", error=DataConfigError)
        if self.pivot.startswith("q") and len(self.pivot) == 3:
            raise DataConfigError(
                f"synthetic.pivot: {self.pivot!r} is in the range 'qaa'-'qtz' used for synthetic languages"
            )

    @property
    def language_codes(self) -> list[str]:
        """Codes of the non-pivot languages, family by family."""
        return [
            f"q{chr(97 + f)}{chr(97 + j)}"
            for f in range(self.num_families)
            for j in range(self.languages_per_family)
        ]


@dataclass(frozen=True)
class Meaning:
    """A sentence meaning; indices are concept ids, ``-1`` means absent."""

    agent: int
    agent_adj: int
    agent_plural: bool
    verb: int
    tense: int
    patient: int
    patient_adj: int
    patient_plural: bool
    relation: int
    place: int


@dataclass
class Language:
    """One language: word roots per concept class plus its grammar and sound changes."""

    code: str
    family: str
    nouns: list[str]
    verbs: list[str]
    adjectives: list[str]
    relations: list[str]
    order: str
    adjective_after: bool
    postpositions: bool
    article: str
    plural: str
    tense_suffixes: tuple[str, str, str]
    object_case: str
    future_auxiliary: str = ""
    sound_changes: dict[int, int] = field(default_factory=dict)

    def _noun_phrase(self, noun: int, adjective: int, plural: bool, is_object: bool) -> list[str]:
        word = self.nouns[noun] + (self.plural if plural else "") + (self.object_case if is_object else "")
        phrase = [word]
        if adjective >= 0:
            phrase = (
                [word, self.adjectives[adjective]]
                if self.adjective_after
                else [self.adjectives[adjective], word]
            )
        return [self.article, *phrase] if self.article else phrase

    def render(self, meaning: Meaning) -> str:
        """The sentence expressing ``meaning`` in this language."""
        parts = {
            "S": self._noun_phrase(meaning.agent, meaning.agent_adj, meaning.agent_plural, False),
            "O": self._noun_phrase(meaning.patient, meaning.patient_adj, meaning.patient_plural, True),
            "V": [self.verbs[meaning.verb] + self.tense_suffixes[meaning.tense]],
        }
        if self.future_auxiliary and _TENSES[meaning.tense] == "future":
            parts["V"] = [self.future_auxiliary, self.verbs[meaning.verb]]
        words = [w for slot in self.order for w in parts[slot]]
        if meaning.place >= 0:
            place = self._noun_phrase(meaning.place, -1, False, False)
            relation = self.relations[meaning.relation]
            words += [*place, relation] if self.postpositions else [relation, *place]
        return " ".join(words)


@dataclass
class SyntheticCorpus:
    """The generated corpus and its ground truth.

    Attributes:
        corpus: pairs stored as ``(xx, pivot)`` with splits ``train``, ``valid``, ``test``.
        families: the planted family table, language code -> family name (pivot excluded).
        languages: the generated languages by code, pivot included.
        config: the configuration it was generated from.
    """

    corpus: ParallelCorpus
    families: dict[str, str]
    languages: dict[str, Language]
    config: SyntheticConfig


def _root(rng: random.Random) -> str:
    syllables = rng.choice((1, 2, 2, 3))
    return "".join(
        rng.choice(_CONSONANTS)
        + rng.choice(_VOWELS)
        + (rng.choice(_CONSONANTS) if rng.random() < 0.3 else "")
        for _ in range(syllables)
    )


def _sound_changes(rng: random.Random, count: int, segments: str) -> dict[int, int]:
    """``count`` rewrites of ``segments`` as a ``str.translate`` table, consonant->consonant, vowel->vowel."""
    table: dict[int, int] = {}
    for segment in rng.sample(segments, min(count, len(segments))):
        pool = _VOWELS if segment in _VOWELS else _CONSONANTS
        table[ord(segment)] = ord(rng.choice([s for s in pool if s != segment]))
    return table


def _derive_roots(roots: list[str], rng: random.Random, replace: float, changes: dict[int, int]) -> list[str]:
    return [(_root(rng) if rng.random() < replace else root).translate(changes) for root in roots]


def _proto_lexicon(config: SyntheticConfig, rng: random.Random) -> dict[str, list[str]]:
    nouns = max(2, config.lexicon_size // 2)
    verbs = max(1, config.lexicon_size * 3 // 10)
    adjectives = max(1, config.lexicon_size - nouns - verbs)
    sizes = {"nouns": nouns, "verbs": verbs, "adjectives": adjectives, "relations": _RELATIONS}
    return {name: [_root(rng) for _ in range(size)] for name, size in sizes.items()}


def _pivot(config: SyntheticConfig) -> Language:
    rng = random.Random(f"gradvac-synthetic/{config.seed}/pivot")
    lexicon = _proto_lexicon(config, rng)
    return Language(
        code=config.pivot,
        family="pivot",
        order="SVO",
        adjective_after=False,
        postpositions=False,
        article=_root(rng)[:2],
        plural=rng.choice(_CONSONANTS),
        tense_suffixes=("", rng.choice(_VOWELS) + "d", ""),
        object_case="",
        future_auxiliary=_root(rng),
        **lexicon,
    )


def _family(config: SyntheticConfig, index: int, proto: dict[str, list[str]], order: str) -> Language:
    rng = random.Random(f"gradvac-synthetic/{config.seed}/family/{index}")
    changes = _sound_changes(rng, round(config.family_divergence * _SEGMENTS / 2), _CONSONANTS + _VOWELS)
    lexicon = {
        name: _derive_roots(roots, rng, config.family_divergence, changes) for name, roots in proto.items()
    }
    verb_final = order.index("V") > order.index("O")
    return Language(
        code="",
        family=f"family{index}",
        order=order,
        adjective_after=rng.random() < 0.5,
        postpositions=verb_final,
        article=_root(rng)[:2] if rng.random() < 0.5 else "",
        plural=_root(rng)[:2],
        tense_suffixes=("", _root(rng)[:2], _root(rng)[:3]),
        object_case=_root(rng)[:2] if verb_final else "",
        sound_changes=changes,
        **lexicon,
    )


def _member(config: SyntheticConfig, family: Language, code: str) -> Language:
    rng = random.Random(f"gradvac-synthetic/{config.seed}/language/{code}")
    changes = _sound_changes(rng, round(config.language_divergence * _SEGMENTS / 2), _CONSONANTS)
    d = config.language_divergence
    return Language(
        code=code,
        family=family.family,
        order=family.order,
        adjective_after=family.adjective_after != (rng.random() < d),
        postpositions=family.postpositions,
        article=family.article.translate(changes),
        plural=family.plural.translate(changes),
        tense_suffixes=(
            family.tense_suffixes[0].translate(changes),
            family.tense_suffixes[1].translate(changes),
            family.tense_suffixes[2].translate(changes),
        ),
        object_case=family.object_case.translate(changes),
        sound_changes=changes,
        nouns=_derive_roots(family.nouns, rng, d, changes),
        verbs=_derive_roots(family.verbs, rng, d, changes),
        adjectives=_derive_roots(family.adjectives, rng, d, changes),
        relations=_derive_roots(family.relations, rng, d, changes),
    )


class _MeaningSampler:
    """Draws distinct meanings with Zipf-distributed concepts."""

    def __init__(self, config: SyntheticConfig, pivot: Language) -> None:
        def cumulative(n: int) -> list[float]:
            total, out = 0.0, []
            for rank in range(1, n + 1):
                total += rank**-config.zipf_exponent
                out.append(total)
            return out

        self._nouns = cumulative(len(pivot.nouns))
        self._verbs = cumulative(len(pivot.verbs))
        self._adjectives = cumulative(len(pivot.adjectives))

    @staticmethod
    def _pick(rng: random.Random, cum: list[float]) -> int:
        return rng.choices(range(len(cum)), cum_weights=cum)[0]

    def sample(self, rng: random.Random) -> Meaning:
        """One random meaning."""
        adj = self._adjectives
        has_place = rng.random() < 0.4
        return Meaning(
            agent=self._pick(rng, self._nouns),
            agent_adj=self._pick(rng, adj) if rng.random() < 0.3 else -1,
            agent_plural=rng.random() < 0.3,
            verb=self._pick(rng, self._verbs),
            tense=rng.randrange(3),
            patient=self._pick(rng, self._nouns),
            patient_adj=self._pick(rng, adj) if rng.random() < 0.3 else -1,
            patient_plural=rng.random() < 0.3,
            relation=rng.randrange(_RELATIONS) if has_place else -1,
            place=self._pick(rng, self._nouns) if has_place else -1,
        )

    def distinct(self, rng: random.Random, count: int) -> list[Meaning]:
        """``count`` distinct meanings, in draw order.

        Raises:
            DataConfigError: if the meaning space is too small for ``count`` distinct meanings.
        """
        seen: dict[Meaning, None] = {}
        attempts = 0
        while len(seen) < count:
            seen.setdefault(self.sample(rng), None)
            attempts += 1
            if attempts > 20 * count + 1000:
                raise DataConfigError(
                    f"synthetic: could not draw {count} distinct sentences; raise synthetic.lexicon_size "
                    "or lower the sentence counts"
                )
        return list(seen)


def build_languages(config: SyntheticConfig) -> dict[str, Language]:
    """All languages of the configuration (pivot included), keyed by code."""
    pivot = _pivot(config)
    proto = _proto_lexicon(config, random.Random(f"gradvac-synthetic/{config.seed}/proto"))
    orders = list(_ORDERS)
    random.Random(f"gradvac-synthetic/{config.seed}/orders").shuffle(orders)
    languages = {pivot.code: pivot}
    codes = iter(config.language_codes)
    for index in range(config.num_families):
        family = _family(config, index, proto, orders[index % len(orders)])
        for _ in range(config.languages_per_family):
            code = next(codes)
            languages[code] = _member(config, family, code)
    return languages


def generate_synthetic(config: SyntheticConfig | None = None) -> SyntheticCorpus:
    """Generate the corpus: for every non-pivot language, a ``(xx, pivot)`` pair with three splits.

    Each pair draws its own distinct meanings (seeded by pair), so pairs are not multi-way parallel;
    train, valid and test meanings of a pair never coincide.
    """
    config = config or SyntheticConfig()
    languages = build_languages(config)
    pivot = languages[config.pivot]
    sampler = _MeaningSampler(config, pivot)
    sizes = {"train": config.train_sentences, "valid": config.valid_sentences, "test": config.test_sentences}
    corpus = ParallelCorpus()
    keep_all = FilterConfig(max_chars=10**9, max_length_ratio=None)
    for code in config.language_codes:
        rng = random.Random(f"gradvac-synthetic/{config.seed}/sentences/{code}")
        meanings = iter(sampler.distinct(rng, sum(sizes.values())))
        language = languages[code]
        for split, size in sizes.items():
            corpus.pairs.setdefault((code, pivot.code), {})[split] = []
            for _ in range(size):
                meaning = next(meanings)
                corpus.add(
                    (code, pivot.code), split, language.render(meaning), pivot.render(meaning), keep_all
                )
    families = {code: languages[code].family for code in config.language_codes}
    return SyntheticCorpus(corpus=corpus, families=families, languages=languages, config=config)
