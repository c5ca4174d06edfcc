#!/usr/bin/env python3
"""Writes tokenizer_reference.jsonl: ids that HF `tokenizers` gives for >= 1,000
varied strings with the tokenizer of the default GGUF, for t2's tokenizer test.

The tokenizer is loaded from the GGUF by transformers. transformers' GGUF loader
knows no split for `tokenizer.ggml.pre = smollm` and leaves plain ByteLevel, while
SmolLM2's own tokenizer.json pre-tokenizes with Sequence[Digits(individual_digits),
ByteLevel(use_regex)] (as llama.cpp's `smollm` does); the reference restores that
sequence. The ids of the unrestored loader and of llama-cpp-python (vocab_only),
when installed, are compared and every disagreement is reported.

Run with the reference venv:  /opt/t2ref/bin/python tests/reference/make_tokenizer_reference.py
Each output line: {"text", "ids", "parse_special"?, "round_trip"?, "chat"?,
"add_generation_prompt"?}; deterministic for a given seed and data folder.
"""
import argparse
import glob
import json
import os
import random
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>",
            "<file_sep>", "<filename>", "<gh_stars>", "<issue_start>", "<issue_comment>",
            "<issue_closed>", "<jupyter_start>", "<jupyter_text>", "<jupyter_code>",
            "<jupyter_output>", "<jupyter_script>", "<empty_output>"]

# ---- strings -----------------------------------------------------------------

HANDMADE = [
    "", " ", "  ", "   ", "\n", "\n\n", "\n\n\n", "\t", "\t\t", "\r\n", " \t \n ", "\n \n",
    "Hello world", "Hello  world", "Hello   world", "  leading", "trailing  ", " both ",
    "Hello\tworld", "Hello\n\nworld", "Hello \nworld", "Hello\n world", "a\u00a0b",
    "I'm", "you're", "they've", "we'll", "he'd", "it's", "don't", "can't", "IT'S", "I'M",
    "'s", "''s", "'ll've", "rock'n'roll", "O'Neil's", "'re'", " 's", "the dog's 'bone'",
    "12345", "3.14159", "1,000,000", " 2024", "a  1", "a 1", "a\t1", "a\n1", "x1y2z3",
    "v1.2.3-rc4", "0x1F", "1e-10", "-42", "+7", "$100.00", "50%", "#1", "2nd", "1st place",
    "9" * 120, "0123456789" * 8, "  123  456  ", "Phone: +1 (555) 123-4567",
    "\u0660\u0661\u0662\u0663", "\u0967\u0968\u0969", "\uff11\uff12\uff13", "x\u00b2 + y\u00b3",
    "\u00bd \u00bc \u00be", "\u216b \u2163", "\u2460\u2461\u2462", "\U0001d7d8\U0001d7d9",
    "a\u2003b", "a\u3000b", "a\u0085b", "a\u2028b", "a\u2029b", "a\u1680b", "a\u180eb",
    "a\u200bb", "a\ufeffb", "a\x0bb", "a\x0cb", "a\x1cb\x1dc\x1ed\x1fe", "a\u202fb",
    "a\u205fb", "   \u00a0  x", "\u3000\u3000\u65e5\u672c",
    "\x04", "!\x04!", "a\x06b", "\x13\x14\x16\x1d", "\x00", "a\x00b", "\x7f", "\x01\x02\x03",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>",
    "a<|endoftext|>b", "<|im_start|><|im_end|>", "<|im_start", "<|im_start|",
    "<<|im_end|>>", "<repo_name>x<reponame>", "<jupyter_output><empty_output>",
    "< |im_start|>", "<|IM_START|>", " <|im_start|> ", "\n<|im_end|>\n",
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    '{"key": [1, 2, 3], "nested": {"a": null, "b": true}}',
    "<html><body class=\"x\">Hi &amp; bye</body></html>",
    "$ ls -la | grep '^d' && echo \"done\" >> log.txt",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';",
    "https://example.com/path?q=a+b&x=1#frag", "mail@example.org",
    "# Title\n\n- item 1\n- item 2\n\n```python\nprint('hi')\n```\n",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 fa\u00e7ade \u00c5ngstr\u00f6m",
    "cafe\u0301 e\u0301", "Stra\u00dfe \u00df \u1e9e", "\u0130stanbul \u0131",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u8fd9\u662f\u4e00\u4e2a\u6d4b\u8bd5\u3002",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u30ab\u30bf\u30ab\u30ca \u30fc",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4",
    "\u0420\u043e\u0441\u0441\u0438\u044f \u0438 \u0423\u043a\u0440\u0430\u0457\u043d\u0430",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd", "\u0928\u092e\u0938\u094d\u0924\u0947",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1",
    "\U0001f600\U0001f44d\U0001f3fd\U0001f1fa\U0001f1f8 and \u2764\ufe0f",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "1\ufe0f\u20e3 #\ufe0f\u20e3",
    "\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f600" * 10, " \U0001f680 rocket",
    "\u2200x\u2208\u211d: x\u00b2 \u2265 0", "\u2500\u2500\u2510\n\u2502 \u2502",
    "...", "!!!", "???", "--", "---", "\u2014", "\u2026", "(parens) [brackets] {braces}",
    "tab\tseparated\tvalues\n1\t2\t3", "    indented\n        more\n",
]

# Fragment pools for random mixtures.
WORDS = ["the", "The", "THE", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
         "tokenizer", "Transformer", "self-adaptive", "don't", "it's", "we'll", "x",
         "na\u00efve", "\u00fcber", "Gr\u00fc\u00dfe", "\u00e9t\u00e9", "se\u00f1or", "\u0107evap",
         "\u043f\u0440\u0438\u0432\u0435\u0442", "\u03b1\u03b2\u03b3", "\u4e2d\u6587",
         "\u6f22\u5b57", "\u3072\u3089\u304c\u306a", "\u30ab\u30bf\u30ab\u30ca", "\ud55c\uae00",
         "\u0639\u0631\u0628\u064a", "\u05e2\u05d1\u05e8\u05d9\u05ea",
         "\u0939\u093f\u0928\u094d\u0926\u0940",
         "\u0e44\u0e17\u0e22", "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8", "\u0540\u0561\u0575",
         "\u12a0\u121b\u122d\u129b", "\u0ba4\u0bae\u0bbf\u0bb4\u0bcd",
         "\u09ac\u09be\u0982\u09b2\u09be",
         "print", "self", "__init__", "std::vector", "i++", "a->b", "x==y", "foo_bar",
         "camelCase", "HTTPServer", "e.g.", "U.S.A."]
NUMBERS = ["0", "7", "42", "100", "2024", "3.14", "1,234", "-1", "1e9", "007", "123456789",
           "\u0663", "\u096a", "\uff15", "\u00b2", "\u00bd", "\u2167"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\t\t", "\u00a0",
          "\u3000", "\u2009", " \t", "    "]
PUNCT = [".", ",", "!", "?", ";", ":", "'", "\"", "(", ")", "[", "]", "{", "}", "<", ">",
         "-", "_", "=", "+", "*", "/", "\\", "|", "&", "^", "%", "$", "#", "@", "~", "`",
         "...", "!?", "->", "=>", "::", "//", "/*", "*/", "\u00ab", "\u00bb", "\u201c", "\u201d",
         "\u2019", "\u3002", "\uff0c", "\u00bf", "\u00a1", "\u00a7", "\u00b0", "\u20ac", "\u00a3"]
EMOJI = ["\U0001f600", "\U0001f44d", "\U0001f44d\U0001f3ff", "\u2764\ufe0f", "\U0001f1ef\U0001f1f5",
         "\U0001f9d1\u200d\U0001f4bb", "\u2728", "\U0001f525", "\u263a", "\U0001f914", "\u2705"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'x", "'"]

# Blocks for random code points (filtered to assigned, non-private characters).
BLOCKS = [(0x20, 0x7E), (0xA0, 0x24F), (0x250, 0x2FF), (0x300, 0x36F), (0x370, 0x52F),
          (0x530, 0x58F), (0x590, 0x6FF), (0x900, 0xDFF), (0xE00, 0xEFF), (0x10A0, 0x10FF),
          (0x1100, 0x11FF), (0x1E00, 0x1FFF), (0x2000, 0x206F), (0x2070, 0x22FF),
          (0x2460, 0x27BF), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
          (0xFB00, 0xFFFD), (0x10000, 0x1014F), (0x1D400, 0x1D7FF), (0x1F300, 0x1FAFF),
          (0x20000, 0x2A6DF)]


def random_code_point(rng):
    while True:
        lo, hi = rng.choice(BLOCKS)
        ch = chr(rng.randint(lo, hi))
        if unicodedata.category(ch) not in ("Cn", "Cs", "Co"):
            return ch


def random_mixture(rng):
    pools = [WORDS, WORDS, WORDS, NUMBERS, SPACES, SPACES, PUNCT, EMOJI, CONTRACTIONS,
             SPECIALS]
    parts = []
    for _ in range(rng.randint(1, 14)):
        kind = rng.random()
        if kind < 0.12:
            parts.append("".join(random_code_point(rng) for _ in range(rng.randint(1, 6))))
        elif kind < 0.16:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 30))))
        else:
            parts.append(rng.choice(rng.choice(pools)))
        if rng.random() < 0.5:
            parts.append(" ")
    return "".join(parts)


def data_lines(rng, data_dir, count):
    """String fields of the shared datasets, cut to 600 characters."""
    texts = []
    for path in sorted(glob.glob(os.path.join(data_dir, "*", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                for value in row.values():
                    if isinstance(value, str) and value.strip():
                        texts.append(value[:600])
    rng.shuffle(texts)
    return texts[:count]


def build_strings(seed, data_dir):
    rng = random.Random(seed)
    texts = list(HANDMADE)
    texts += [random_mixture(rng) for _ in range(550)]
    texts += data_lines(rng, data_dir, 400)
    # Each special token glued to text on either side.
    texts += [f"x{s}y {s}\n{s}" for s in SPECIALS]
    seen, unique = set(), []
    for t in texts:
        if t not in seen:
            seen.add(t)
            unique.append(t)
    return unique


CHATS = [
    ([{"role": "user", "content": "What is 12 * 7?"}], True),
    ([{"role": "system", "content": "You answer in French."},
      {"role": "user", "content": "Hello!"}], True),
    ([{"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello, how can I help?"},
      {"role": "user", "content": "Write  code:\n\tx = 1"}], False),
    ([{"role": "user", "content": "\u65e5\u672c\u8a9e \U0001f600 <|im_end|> inside"}], True),
]

# ---- references ----------------------------------------------------------------


def load_hf(model_path):
    from tokenizers import Tokenizer, pre_tokenizers
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.dirname(model_path),
                                        gguf_file=os.path.basename(model_path))
    as_loaded = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    plain = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    plain.encode_special_tokens = True  # control tokens written in text stay text
    return tok, as_loaded, plain


def load_llama(model_path):
    try:
        from llama_cpp import Llama
    except ImportError:
        print("llama-cpp-python not installed: no llama.cpp cross-check")
        return None
    return Llama(model_path=model_path, vocab_only=True, verbose=False)


def show_diffs(diffs, name):
    for text, ids, other in diffs:
        print(f"  {json.dumps(text, ensure_ascii=False)[:90]}")
        print(f"    {'hf':8}{ids[:20]}\n    {name:8}{other[:20]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--seed", type=int, default=20250101)
    ap.add_argument("--out", default=os.path.join(HERE, "tokenizer_reference.jsonl"))
    args = ap.parse_args()

    tok, as_loaded, plain = load_hf(args.model)
    llama = load_llama(args.model)
    texts = build_strings(args.seed, args.data)
    cases = [{"text": t} for t in texts]
    cases += [{"text": t, "parse_special": False}
              for t in texts if any(s in t for s in SPECIALS)]

    for messages, gen in CHATS:
        rendered = tok.apply_chat_template(messages, tokenize=False,
                                           add_generation_prompt=gen)
        cases.append({"text": rendered, "chat": messages, "add_generation_prompt": gen})

    loader_diff, loader_checked, llama_diff, llama_checked = [], 0, [], 0
    for case in cases:
        text, special = case["text"], case.get("parse_special", True)
        if special:
            ids = tok.encode(text, add_special_tokens=False)
            loaded = as_loaded.encode(text, add_special_tokens=False).ids
            loader_checked += 1
            if loaded != ids:
                loader_diff.append((text, ids, loaded))
        else:
            ids = plain.encode(text, add_special_tokens=False).ids
        case["ids"] = ids
        back = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if back != text:
            case["round_trip"] = False
        if llama is not None:
            llama_checked += 1
            theirs = llama.tokenize(text.encode("utf-8"), add_bos=False, special=special)
            if theirs != ids:
                llama_diff.append((text, ids, theirs))

    with open(args.out, "w", encoding="utf-8") as f:
        for case in cases:
            f.write(json.dumps(case, ensure_ascii=False) + "\n")

    n_text = sum("chat" not in c for c in cases)
    n_plain = sum(not c.get("parse_special", True) for c in cases)
    n_lossy = sum("round_trip" in c for c in cases)
    size_mb = os.path.getsize(args.out) / 1e6
    print(f"wrote {args.out}: {n_text} texts ({n_plain} without special parsing), "
          f"{len(cases) - n_text} chats, {n_lossy} not round-tripping, {size_mb:.2f} MB")
    print(f"transformers' GGUF loader as is (no digit split) differs on "
          f"{len(loader_diff)} of {loader_checked}")
    show_diffs(loader_diff[:5], "loader")
    if llama is not None:
        print(f"llama.cpp agrees on {llama_checked - len(llama_diff)} of {llama_checked}")
        show_diffs(llama_diff[:30], "llama")
    return 0


if __name__ == "__main__":
    sys.exit(main())
