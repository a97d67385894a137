"""Query and document prompts (searchkit/prompts.py), held to sentence-transformers on a copy of
all-MiniLM-L6-v2 whose config_sentence_transformers.json declares them; and an index records
them, searches with them and refuses an encoder with other ones by name."""

import json
import sqlite3

import numpy as np
import pytest
from index_helpers import fails_with, invoke
from st_folders import TEXTS, minilm_copy, sentence_transformer

import searchkit
from searchkit import parity
from searchkit.errors import BadInput, ModelLoadError, ModelMismatch
from searchkit.prompts import Prompts

pytest.importorskip("sentence_transformers")

PROMPTS = {"query": "query: ", "passage": "passage: "}  # e5's spelling: documents are "passage"
QUERY = "a small anonymous function"
DOCS = {
    "lambda.txt": "Lambda expressions create small anonymous functions in Python.",
    "while.txt": "The while loop repeats a block as long as its condition holds.",
    "try.txt": "Exceptions are caught with try and except clauses.",
}


def exact(a, b, atol=1e-6):
    np.testing.assert_allclose(a, b, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def prompted(tmp_path_factory):
    return minilm_copy(tmp_path_factory.mktemp("st") / "prompted", prompts=PROMPTS)


@pytest.fixture(scope="module")
def enc(prompted):
    return searchkit.load_encoder(prompted, device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def reference(prompted):
    return sentence_transformer(prompted)


@pytest.fixture()
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    return folder


def test_query_and_document_vectors_equal_sentence_transformers(enc, reference):
    """The long text runs past 256 tokens: the prompt's tokens count toward the limit."""
    assert (enc.query_prompt, enc.document_prompt) == ("query: ", "passage: ")
    queries = enc.encode_queries(TEXTS)
    exact(queries, reference.encode(TEXTS, prompt_name="query"))
    exact(queries[:2], reference.encode_query(TEXTS[:2]))
    exact(enc.encode(TEXTS[:2], prompt_name="query"), queries[:2])
    exact(enc.encode_documents(TEXTS), reference.encode(TEXTS, prompt_name="passage"))
    plain = enc.encode(TEXTS[:3])  # no default prompt: none
    exact(plain, reference.encode(TEXTS[:3]))
    assert np.abs(plain - queries[:3]).max() > 1e-2
    own = "Represent this sentence for searching relevant passages: "
    exact(enc.encode(TEXTS[:2], prompt=own), reference.encode(TEXTS[:2], prompt=own))
    # the prompt goes in front and the text is cut to fit: 256 tokens with it as without
    assert len(enc.tokenize([TEXTS[3]])[0]) == len(enc.tokenize(["query: " + TEXTS[3]])[0]) == enc.max_length


def test_default_prompt_name_applies_to_plain_encode(tmp_path):
    folder = minilm_copy(tmp_path / "m", prompts=PROMPTS, default_prompt_name="query")
    enc = searchkit.load_encoder(folder, device="cpu", dtype="fp32")
    ours = enc.encode(TEXTS[:2])
    exact(ours, sentence_transformer(folder).encode(TEXTS[:2]))
    exact(ours, enc.encode_queries(TEXTS[:2]))
    # `prompt_name` / `prompt` on the encoder replace the default (the CLI's --prompt-name / --prompt)
    other = searchkit.load_encoder(folder, device="cpu", dtype="fp32", prompt="")
    exact(other.encode(TEXTS[:2]), enc.encode(TEXTS[:2], prompt=""))


@pytest.mark.parametrize("mode", ["mean", "cls", "weightedmean"])
def test_prompt_left_out_of_pooling_as_sentence_transformers_does(tmp_path, mode):
    key = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token",
           "weightedmean": "pooling_mode_weightedmean_tokens"}[mode]
    folder = minilm_copy(tmp_path / "m", prompts=PROMPTS, pooling={key: True, "include_prompt": False})
    enc = searchkit.load_encoder(folder, device="cpu", dtype="fp32")
    assert not enc.include_prompt and enc.prompt_pool_tokens("query: ") == 3  # [CLS] query :
    ours = enc.encode_queries(TEXTS[:3])
    exact(ours, sentence_transformer(folder).encode(TEXTS[:3], prompt_name="query"))
    exact(ours, np.stack([enc.encode_queries([t])[0] for t in TEXTS[:3]]))  # batch-invariant
    pooled_too = searchkit.load_encoder(folder, device="cpu", dtype="fp32", include_prompt=True)
    assert np.abs(pooled_too.encode_queries(TEXTS[:3]) - ours).max() > 1e-3
    assert enc.settings()["include_prompt"] is False


def test_chunks_leave_room_for_the_document_prompt(enc, minilm):
    assert enc.max_content_tokens == minilm.max_content_tokens - len(enc.tokenizer.encode("passage: ").ids) + 2


def test_prompt_arguments_are_checked(enc, tmp_path):
    with pytest.raises(BadInput, match="not both"):
        enc.encode(["x"], prompt_name="query", prompt="q: ")
    with pytest.raises(BadInput, match="^prompt_name='nope': this model's prompts are 'query', 'passage'$"):
        enc.encode(["x"], prompt_name="nope")
    with pytest.raises(BadInput, match="^query_prompt=3: expected a string$"):
        Prompts().overridden(query=3)
    folder = minilm_copy(tmp_path / "bad", prompts=PROMPTS, default_prompt_name="classification")
    with pytest.raises(ModelLoadError, match="default_prompt_name 'classification' is not one of its prompts"):
        searchkit.load_encoder(folder, device="cpu")


def test_embed_command_takes_a_prompt(prompted, enc):
    want = enc.encode_queries(["x"])
    for args in (["--prompt-name", "query"], ["--prompt", "query: "]):
        result = invoke("embed", "x", "--model", prompted, *args, "--json")
        assert result.exit_code == 0, result.output
        exact(json.loads(result.stdout)["embeddings"], want)
    fails_with(invoke("embed", "x", "--model", prompted, "--prompt-name", "nope"),
               "--prompt-name 'nope': this model's prompts are 'query', 'passage'")
    fails_with(invoke("embed", "x", "--model", prompted, "--prompt-name", "query", "--prompt", "q"), "not both")


def test_search_embeds_the_query_with_its_prompt(prompted, enc, docs, tmp_path):
    index = tmp_path / "idx"
    assert invoke("ingest", docs, "--index", index, "--model", prompted, "--json").exit_code == 0
    result = invoke("search", QUERY, "--index", index, "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits[0]["path"].endswith("lambda.txt")
    chunks = enc.encode([h["text"] for h in hits], prompt="passage: ")  # as ingest embedded them
    query = enc.encode([QUERY], prompt="query: ")[0]
    exact([h["score"] for h in hits], chunks @ query, atol=1e-5)
    # without the prompts the scores would differ: the check above tells them apart
    assert np.abs(enc.encode([h["text"] for h in hits]) @ enc.encode([QUERY])[0] - chunks @ query).max() > 1e-3
    settings = searchkit.open_index(index).settings
    assert (settings.query_prompt, settings.document_prompt) == ("query: ", "passage: ")
    # another query prompt is refused by name, from Python and from the command line
    with pytest.raises(ModelMismatch, match="query_prompt 'query: ' vs 'question: '"):
        searchkit.open_index(index, model=prompted, query_prompt="question: ", device="cpu").search(QUERY)
    fails_with(invoke("ingest", docs, "--index", index, "--model", prompted, "--document-prompt", ""),
               "document_prompt 'passage: ' vs None")


def test_stored_prompts_go_with_the_stored_model(tmp_path, docs):
    """Reopened without a model, an index embeds queries with the prompts it recorded, even if
    the folder's config has changed since."""
    folder = minilm_copy(tmp_path / "m", prompts=PROMPTS)
    index = searchkit.open_index(tmp_path / "idx", model=folder, device="cpu")
    index.ingest([docs])
    before = index.search(QUERY, k=3)
    (folder / "config_sentence_transformers.json").write_text("{}")
    again = searchkit.open_index(tmp_path / "idx", device="cpu")
    assert again.encoder.query_prompt == "query: "
    assert [(h.chunk_id, round(h.score, 5)) for h in again.search(QUERY, k=3)] == \
        [(h.chunk_id, round(h.score, 5)) for h in before]


def test_index_without_prompts_keeps_none_when_a_prompted_model_is_named(prompted, enc, docs, tmp_path):
    """`prompted` has all-MiniLM-L6-v2's weights: naming it opens an index built without
    prompts with none (its vectors were made so); an explicit other prompt, or an encoder
    made with one, is refused by name."""
    index = tmp_path / "idx"
    assert invoke("ingest", docs, "--index", index, "--json").exit_code == 0  # all-MiniLM-L6-v2, no prompt
    plain = searchkit.open_index(index, device="cpu").search(QUERY, k=3)
    with pytest.raises(ModelMismatch, match="query_prompt None vs 'query: ', document_prompt None vs 'passage: '"):
        searchkit.open_index(index, encoder=enc).search(QUERY)
    assert invoke("ingest", docs, "--index", index, "--model", prompted).exit_code == 0
    fails_with(invoke("ingest", docs, "--index", index, "--model", prompted, "--query-prompt", "query: "),
               "query_prompt None vs 'query: '")
    # An index from before prompts (no such keys) opens as "no prompt", and behaves the same way.
    db = sqlite3.connect(index / "catalog.db")
    with db:
        db.execute("DELETE FROM settings WHERE key IN ('query_prompt', 'document_prompt', 'include_prompt', "
                   "'truncate_dim')")
    db.close()
    old = searchkit.open_index(index, device="cpu")
    assert old.settings.query_prompt is None and old.settings.include_prompt is True
    assert old.search(QUERY, k=1)[0].path.endswith("lambda.txt")
    named = searchkit.open_index(index, model=prompted, device="cpu")
    assert (named.encoder.query_prompt, named.encoder.document_prompt) == ("", "")
    assert [(h.chunk_id, round(h.score, 5)) for h in named.search(QUERY, k=3)] == \
        [(h.chunk_id, round(h.score, 5)) for h in plain]
    with pytest.raises(ModelMismatch, match="query_prompt None vs 'query: '"):
        searchkit.open_index(index, encoder=enc).search(QUERY)
    with pytest.raises(ModelMismatch, match="query_prompt None vs 'query: '"):
        searchkit.open_index(index, model=prompted, query_prompt="query: ", device="cpu").search(QUERY)


def test_recorded_prompts_stay_when_the_model_is_named_again(tmp_path, docs):
    """Prompts given at the first ingest are the index's: naming the model again without the
    prompt flags embeds with them (as README's e5 example re-runs its ingest)."""
    folder = minilm_copy(tmp_path / "plain")  # no prompts of its own
    index = tmp_path / "idx"
    first = ["ingest", docs, "--index", index, "--model", folder]
    assert invoke(*first, "--query-prompt", "query: ", "--document-prompt", "passage: ").exit_code == 0
    result = invoke(*first, "--json")
    assert result.exit_code == 0, result.output
    reopened = searchkit.open_index(index, model=folder, device="cpu")
    assert (reopened.encoder.query_prompt, reopened.encoder.document_prompt) == ("query: ", "passage: ")
    fails_with(invoke(*first, "--document-prompt", ""), "document_prompt 'passage: ' vs None")


def test_include_prompt_is_compared_only_where_a_prompt_is(tmp_path, docs):
    """Without prompts, whether prompt tokens are pooled changes no vector: a folder whose
    pooling config leaves prompts out opens an index built without prompts."""
    from searchkit.settings import IndexSettings

    folder = minilm_copy(tmp_path / "excl", pooling={"pooling_mode_mean_tokens": True, "include_prompt": False})
    index = searchkit.open_index(tmp_path / "idx", device="cpu")  # all-MiniLM-L6-v2, no prompt
    index.ingest([docs])
    excluding = searchkit.load_encoder(folder, device="cpu")
    assert excluding.include_prompt is False
    assert searchkit.open_index(tmp_path / "idx", encoder=excluding).search(QUERY, k=1)[0].path.endswith("lambda.txt")
    stored = IndexSettings(model="m", weights_sha256="0" * 64, query_prompt="query: ", include_prompt=False)
    same = {k: getattr(stored, k) for k in ("model_type", "weights_sha256", "dim", "pooling", "normalize", "layer",
                                            "max_length", "query_prompt", "document_prompt", "truncate_dim")}
    stored.check_encoder({**same, "include_prompt": False}, "idx")
    with pytest.raises(ModelMismatch, match="include_prompt False vs True"):
        stored.check_encoder({**same, "include_prompt": True}, "idx")
    unprompted = IndexSettings(model="m", weights_sha256="0" * 64, include_prompt=False)
    unprompted.check_encoder({**same, "query_prompt": None, "include_prompt": True}, "idx")


def test_parity_reference_gets_the_same_prompt(prompted, enc):
    """The TUI's parity toggle embeds the query with transformers through this function."""
    pytest.importorskip("transformers")
    reference = parity.load_reference(prompted)
    ours = enc.encode_queries([QUERY])
    exact(parity.reference_vectors(enc, reference, [QUERY], prompt=enc.query_prompt), ours, atol=1e-5)
    assert np.abs(parity.reference_vectors(enc, reference, [QUERY]) - ours).max() > 1e-3


def test_parity_command_holds_the_pipeline_to_sentence_transformers(prompted):
    """`searchkit parity` compares the final vectors too: prompt, pooling, --dim, normalisation."""
    pytest.importorskip("transformers")
    result = invoke("parity", "--model", prompted, "--dim", "128", "--text", TEXTS[1], "--text", TEXTS[3], "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["pipeline_note"] is None
    assert [(d["role"], d["prompt"]) for d in report["pipeline"]] == [("query", "query: "), ("document", "passage: ")]
    assert all(d["max_abs"] < 1e-6 and d["cosine"] > 0.999999 for d in report["pipeline"])


def test_pipeline_comparison_says_why_it_cannot_run(prompted):
    from searchkit.st_pipeline import why_not

    assert why_not(searchkit.load_encoder(prompted, device="cpu")) is None
    assert "not the folder's own (mean)" in why_not(searchkit.load_encoder(prompted, device="cpu", pooling="cls"))
    assert "normalisation is off" in why_not(searchkit.load_encoder(prompted, device="cpu", normalize=False))


def test_options_take_the_stored_prompts_unless_given(tmp_path):
    from searchkit.settings import IndexOptions, IndexSettings

    stored = IndexSettings(model="m", weights_sha256="0" * 64, query_prompt="query: ", include_prompt=False,
                           truncate_dim=64)
    for options in (IndexOptions(), IndexOptions(model="other")):  # a model named: its weights are checked
        args = options.encoder_args(stored)
        assert (args["query_prompt"], args["document_prompt"], args["include_prompt"], args["dim"]) == \
            ("query: ", "", False, 64)
    assert IndexOptions(model="other", query_prompt="q: ").encoder_args(stored)["query_prompt"] == "q: "
    assert IndexOptions().encoder_args(IndexSettings())["query_prompt"] is None  # a new index
    assert IndexOptions(model="other").encoder_args(IndexSettings())["query_prompt"] is None
    # no prompt recorded: include_prompt changes nothing, and is left to the model
    unprompted = IndexOptions(model="other").encoder_args(IndexSettings(model="m", weights_sha256="0" * 64))
    assert (unprompted["query_prompt"], unprompted["document_prompt"]) == ("", "")
    assert "include_prompt" not in unprompted
    rebuilt = IndexOptions().for_rebuild(stored, True, tmp_path, {})
    assert (rebuilt.model, rebuilt.query_prompt, rebuilt.document_prompt, rebuilt.dim) == ("m", "query: ", "", 64)
