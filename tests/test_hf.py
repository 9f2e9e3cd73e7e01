"""HuggingFace transformers as they are: GPT-2, BERT and Llama from tiny configs (random weights, no download),
dict batches and BatchEncodings, the model's own loss weighted by tokens, and ``--model hf:DIR`` with
``--data text:FILE`` / ``jsonl:FILE`` from the command line."""

import copy
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import landscape
from landscape.errors import LandscapeError
from landscape.surface import read_surface
from byhand import POINTS, crash_and_resume, moved

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

GRID = dict(x="-1:1:3", y="-1:1:3", render=False, progress=False)
VOCAB = 64


def gpt2(vocab=VOCAB):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=vocab, n_positions=32,
                                  bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def llama():
    torch.manual_seed(1)
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                                   bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return transformers.LlamaForCausalLM(cfg).eval()


def bert(num_labels=3):
    torch.manual_seed(2)
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=32, num_labels=num_labels,
                                  pad_token_id=0)
    return transformers.BertForSequenceClassification(cfg).eval()


@pytest.fixture(scope="module")
def tokens():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, VOCAB, (24, 16), generator=g)
    labels = ids.clone()
    labels[::2, :6] = -100  # prompts masked out in half the sequences: batches hold different token counts
    mask = torch.ones_like(ids)
    mask[1::4, 12:] = 0  # and some padding
    labels[mask == 0] = -100
    return ids, mask, labels


def own_loss(model, batches):
    """The model's own loss over the data, weighted by its non-ignored (shifted) label tokens, by hand."""
    total = count = 0.0
    with torch.no_grad():
        for b in batches:
            n = float((b["labels"][:, 1:] != -100).sum())
            total += float(model(**b).loss) * n
            count += n
    return total / count


def test_gpt2_with_dict_batches_gets_its_own_token_weighted_loss(tmp_path, tokens):
    ids, mask, labels = tokens
    net = gpt2()
    before = copy.deepcopy(net.state_dict())
    data = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    res = landscape.compute(net, data=data, batch_size=5, out=str(tmp_path), **GRID)
    s = read_surface(res.path)
    assert s.attrs["loss"] == "model" and "shifted by one" in s.attrs["loss_weighting"]
    batches = [{k: v[i:i + 5] for k, v in data.items()} for i in range(0, 24, 5)]
    for i, j in POINTS:
        assert s.values["train_loss"][i, j] == pytest.approx(own_loss(moved(net, res.path, i, j), batches), rel=1e-6)
    with torch.no_grad():  # token accuracy over the non-ignored shifted labels
        logits = net(input_ids=ids, attention_mask=mask).logits[:, :-1]
    keep = labels[:, 1:] != -100
    acc = float((logits.argmax(-1)[keep] == labels[:, 1:][keep]).double().mean() * 100)
    assert s.values["train_acc"][1, 1] == pytest.approx(acc, rel=1e-9)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_gpt2_from_a_list_of_batches_and_a_batch_encoding(tmp_path, tokens):
    ids, mask, labels = tokens
    net = gpt2()
    enc = transformers.BatchEncoding({"input_ids": ids, "attention_mask": mask, "labels": labels})
    a = landscape.compute(net, data=enc, out=str(tmp_path), name="enc", **GRID)
    b = landscape.compute(net, data=[{"input_ids": ids[i:i + 8], "attention_mask": mask[i:i + 8],
                                      "labels": labels[i:i + 8]} for i in range(0, 24, 8)],
                          out=str(tmp_path), name="list", **GRID)
    np.testing.assert_allclose(read_surface(a.path).values["train_loss"], read_surface(b.path).values["train_loss"],
                               rtol=1e-6)


def test_gpt2_explicit_cross_entropy_is_refused_when_the_model_shifts_its_labels(tmp_path, tokens):
    ids, mask, labels = tokens
    with pytest.raises(LandscapeError, match=r"causal language model shifts its labels by one\); drop loss="):
        landscape.compute(gpt2(), data={"input_ids": ids, "labels": labels}, loss="cross_entropy",
                          out=str(tmp_path), **GRID)


class Items(torch.utils.data.Dataset):
    def __init__(self, **fields):
        self.fields = fields

    def __len__(self):
        return len(next(iter(self.fields.values())))

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.fields.items()}


def test_llama_from_a_dataloader_of_dicts_with_resume_and_splits(tmp_path, tokens):
    ids, mask, labels = tokens
    net = llama()
    loader = torch.utils.data.DataLoader(Items(input_ids=ids[:16], attention_mask=mask[:16], labels=labels[:16]),
                                         batch_size=4)
    test = {"input_ids": ids[16:], "attention_mask": mask[16:], "labels": labels[16:]}
    res = landscape.compute(net, data={"train": loader, "test": test}, batch_size=4, out=str(tmp_path), **GRID)
    s = read_surface(res.path)
    for i, j in POINTS:
        m = moved(net, res.path, i, j)
        assert s.values["train_loss"][i, j] == pytest.approx(own_loss(m, list(loader)), rel=1e-6)
        assert s.values["test_loss"][i, j] == pytest.approx(own_loss(m, [test]), rel=1e-6)
    again = landscape.compute(net, data={"train": loader, "test": test}, batch_size=4, out=str(tmp_path), **GRID)
    assert again.computed == 0  # resumed: nothing left to do


def test_bert_classifier_with_input_ids_and_labels_pairs_and_dicts(tmp_path, tokens):
    """(input_ids, labels): the default cross-entropy on the output's logits; a dict with labels: the model's own
    loss (a mean over sequences); the same surface."""
    ids, mask, _ = tokens
    y = torch.arange(24) % 3
    net = bert()
    a = landscape.compute(net, data=(ids, y), out=str(tmp_path), name="pair", **GRID)
    b = landscape.compute(net, data={"input_ids": ids, "labels": y}, batch_size=7, out=str(tmp_path), name="dict",
                          **GRID)
    sa, sb = read_surface(a.path), read_surface(b.path)
    assert sa.attrs["loss"] == "cross_entropy" and sb.attrs["loss"] == "model"
    for i, j in POINTS:
        with torch.no_grad():
            logits = moved(net, a.path, i, j)(input_ids=ids).logits
        assert sa.values["train_loss"][i, j] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-6)
        assert sa.values["train_acc"][i, j] == pytest.approx(float((logits.argmax(1) == y).double().mean() * 100))
    np.testing.assert_allclose(sa.values["train_loss"], sb.values["train_loss"], rtol=1e-6)
    np.testing.assert_allclose(sa.values["train_acc"], sb.values["train_acc"])


# -- from the command line -----------------------------------------------------------------------------------------
TEXT = ("the quick brown fox jumps over the lazy dog. " * 6 + "a landscape of loss around a trained network. " * 6)


def save_folder(tmp_path, shard: bool = False, tokenizer: bool = True):
    """A local HuggingFace folder: a GPT-2 (safetensors, in shards of 40 KB with ``shard``) and a byte-level BPE
    tokenizer trained here. Returns ``(folder, tokenizer, model)``."""
    from tokenizers import ByteLevelBPETokenizer

    folder = tmp_path / "gpt2_tiny"
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([TEXT], vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    net = gpt2(vocab=len(tok))
    net.save_pretrained(folder, max_shard_size="40KB" if shard else "5GB")
    if tokenizer:
        tok.save_pretrained(folder)
    return folder, tok, net


def text_blocks(tok, text, n):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    x = torch.tensor(ids[:len(ids) // n * n]).view(-1, n)
    return {"input_ids": x, "labels": x.clone()}


@pytest.mark.parametrize("shard", [False, True])
def test_hf_folder_and_text_file_from_the_command_line(tmp_path, shard):
    from landscape.plot import main as plot_main

    folder, tok, net = save_folder(tmp_path, shard)
    assert (folder / "model.safetensors.index.json").exists() == shard
    (tmp_path / "valid.txt").write_text(TEXT)
    out = tmp_path / "out"
    assert plot_main(["--model", f"hf:{folder}", "--data", f"text:{tmp_path / 'valid.txt'}", "--seq-len", "16",
                      "--1d", "--x", "-1:1:3", "--quiet", "--no-render", "--out", str(out)]) == 0
    s = read_surface(str(out / "gpt2_tiny_1d.h5"))
    data = text_blocks(tok, TEXT, 16)
    assert s.attrs["arch"] == "hf:GPT2LMHeadModel" and s.attrs["seq_len"] == 16
    assert s.attrs["n_samples"] == len(data["input_ids"]) and s.attrs["dataset"].startswith("text:valid.txt")
    assert s.values["train_loss"][1] == pytest.approx(own_loss(net, [data]), rel=1e-6)


def test_jsonl_records_with_a_text_key(tmp_path):
    from landscape.plot import main as plot_main

    folder, tok, net = save_folder(tmp_path)
    docs = [TEXT[:120], TEXT[120:300]]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"body": d, "id": i}) for i, d in enumerate(docs)))
    out = tmp_path / "out"
    assert plot_main(["--model", f"hf:{folder}", "--data", f"jsonl:{tmp_path / 'd.jsonl'}", "--text-key", "body",
                      "--seq-len", "8", "--1d", "--x", "-1:1:3", "--quiet", "--no-render", "--out", str(out)]) == 0
    ids = tok(docs[0], add_special_tokens=False)["input_ids"] + [tok.eos_token_id] + \
        tok(docs[1], add_special_tokens=False)["input_ids"]
    x = torch.tensor(ids[:len(ids) // 8 * 8]).view(-1, 8)
    s = read_surface(str(out / "gpt2_tiny_1d.h5"))
    assert s.values["train_loss"][1] == pytest.approx(own_loss(net, [{"input_ids": x, "labels": x}]), rel=1e-6)


@pytest.mark.parametrize("args,needle", [
    (["--data", "text:{tmp}/none.txt"], "no such file"),
    (["--data", "jsonl:{tmp}/d.jsonl"], "has no text under 'text'"),
    (["--data", "text:{tmp}/valid.txt", "--seq-len", "100000"], "fewer than one sequence of --seq-len 100000"),
    (["--data", "text:{tmp}/valid.txt", "--split", "train,test"], "not a train and a test split"),
])
def test_text_data_errors_are_one_line(tmp_path, args, needle):
    folder, _, _ = save_folder(tmp_path)
    (tmp_path / "valid.txt").write_text(TEXT)
    (tmp_path / "d.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
    r = subprocess.run([sys.executable, "-m", "landscape.plot", "--model", f"hf:{folder}", "--1d", "--out",
                        str(tmp_path / "out"), *[a.format(tmp=tmp_path) for a in args]],
                       capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr


def test_missing_tokenizer_and_missing_transformers_are_one_line_errors(tmp_path, monkeypatch):
    folder, _, _ = save_folder(tmp_path, tokenizer=False)
    (tmp_path / "valid.txt").write_text(TEXT)
    with pytest.raises(LandscapeError, match="no tokenizer in .* tokenizer.save_pretrained"):
        landscape.compute(model_spec=f"hf:{folder}", data=f"text:{tmp_path / 'valid.txt'}", **GRID)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(LandscapeError, match="needs transformers, which is not installed; pip install transformers"):
        landscape.compute(model_spec=f"hf:{folder}", data=f"text:{tmp_path / 'valid.txt'}", **GRID)


def test_a_folder_whose_weights_hold_nan_is_refused_in_one_line(tmp_path):
    """--model hf:DIR gets the checks every checkpoint gets: a diverged run's NaN weights are refused, not drawn as
    a surface of NaN."""
    from landscape.models.hf import load_hf_model

    folder, _, net = save_folder(tmp_path, tokenizer=False)
    with torch.no_grad():
        net.transformer.h[0].mlp.c_fc.weight[0, 0] = float("nan")
    net.save_pretrained(folder)
    with pytest.raises(LandscapeError, match=r"holds non-finite values \(NaN/inf\) in "
                                             r"'transformer.h.0.mlp.c_fc.weight' \(1 of \d+ entries\): the run diverged"):
        load_hf_model(str(folder))


def test_torchrun_two_ranks_equal_one_process_for_a_language_model(tmp_path):
    """--model hf:DIR --data text:FILE under torchrun: each rank evaluates its share of the points with the model's
    own token-weighted loss; the file equals one process's, bit for bit."""
    import os

    import h5py

    folder, _, _ = save_folder(tmp_path)
    (tmp_path / "valid.txt").write_text(TEXT)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1")
    args = ["-m", "landscape.plot", "--model", f"hf:{folder}", "--data", f"text:{tmp_path / 'valid.txt'}",
            "--seq-len", "8", "--x", "-1:1:3", "--y", "-1:1:2", "--quiet", "--no-render", "--device", "cpu"]
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          *args, "--out", str(tmp_path / "two")], cwd=root, env=env, capture_output=True, text=True,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    with h5py.File(tmp_path / "one" / "gpt2_tiny.h5") as a, h5py.File(tmp_path / "two" / "gpt2_tiny.h5") as b:
        np.testing.assert_array_equal(a["train_loss"][()], b["train_loss"][()])
        np.testing.assert_array_equal(a["train_acc"][()], b["train_acc"][()])
        assert b["train_done"][()].all() and b.attrs["device"] == "cpu x2 ranks" and b.attrs["loss"] == "model"


def test_gpt2_resumes_and_its_error_bars_come_from_token_weighted_batches(tmp_path, tokens):
    """The model's own loss is a batch mean: under --tolerance a stopped point's value is the token-weighted mean
    of the batches it read, its standard error the ratio estimator's over those batches, by hand."""
    ids, mask, labels = tokens
    net = gpt2()
    data = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    full = landscape.compute(net, data=data, batch_size=6, out=str(tmp_path), name="full", **GRID)
    done, again = crash_and_resume(net, 2 + 4 * 4, data=data, batch_size=6, out=str(tmp_path), name="resumed",
                                   **GRID)
    assert done == 4 and again.computed == 5
    np.testing.assert_array_equal(read_surface(again.path).values["train_loss"],
                                  read_surface(full.path).values["train_loss"])
    res = landscape.compute(net, data=data, batch_size=4, tolerance=50.0, min_samples=8, seed=2, one_d=True,
                            x="-0.5:0.5:3", render=False, progress=False, out=str(tmp_path), name="adaptive")
    s = read_surface(res.path)
    n = int(s.values["train_n"][1])
    assert n == 12  # stopped at the second check: 8, then 12 of 24 sequences, in 3 batches of 4
    order = torch.from_numpy(np.random.RandomState(2).permutation(24)[:n])
    sums, weights = [], []
    with torch.no_grad():
        for k in range(0, n, 4):
            b = {key: v[order[k:k + 4]] for key, v in data.items()}
            w = float((b["labels"][:, 1:] != -100).sum())
            sums.append(float(net(**b).loss) * w)
            weights.append(w)
    sums, weights = np.array(sums), np.array(weights)
    r = sums.sum() / weights.sum()
    se = math.sqrt(((sums - r * weights) ** 2).sum() / 2 * 3 * (1 - n / 24)) / weights.sum()
    assert s.values["train_loss"][1] == pytest.approx(r, rel=1e-6)
    assert s.values["train_loss_se"][1] == pytest.approx(se, rel=1e-5)
