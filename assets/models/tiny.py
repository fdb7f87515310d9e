"""The offline stand-in for DeepSeek-R1-Distill-Qwen: a few-MB qwen2 model with the same chat conventions.

It is built here, deterministically, because nothing can be downloaded: a byte-level BPE tokenizer that
splits digits (as Qwen's does) with the R1 special tokens and chat template (the generation prompt ends in
"<think>\\n"), a `response_template` so servers split reasoning from the answer, and a qwen2 model trained
for a bounded number of steps on synthetic arithmetic written in the R1 format. It answers some problems
right and some wrong, so every grading path runs; the offline chain runs exactly the code the real models
run.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from assets.matrix.spec import R1_PROMPT_SUFFIX

TINY_MODEL_NAME = "tiny-r1-qwen2"
TINY_BUILD_VERSION = "4"   # 4: shaped for GGUF (rows of 256, padded vocabulary, Qwen2's pre-tokenizer), and the
                           # R1 template's idiom that drops past reasoning, by which llama.cpp knows the template
TRAINING_STEPS = 600
TRAINING_BATCH = 48
LEARNING_RATE = 3e-3

BOS_TOKEN = "<｜begin▁of▁sentence｜>"
EOS_TOKEN = "<｜end▁of▁sentence｜>"
USER_TOKEN = "<｜User｜>"
ASSISTANT_TOKEN = "<｜Assistant｜>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
PAD_TOKEN = "<｜▁pad▁｜>"
# As in the DeepSeek-R1-Distill tokenizers: the sentence markers are special (skipped when decoding), while the
# role markers and the think tags are added tokens that are not special, so they stay in the decoded text and
# the engines' reasoning parsers (vLLM's deepseek_r1) find the end of the reasoning.
SPECIAL_TOKENS = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN]
ADDED_TOKENS = [USER_TOKEN, ASSISTANT_TOKEN, THINK_OPEN, THINK_CLOSE]

# Same conventions as the DeepSeek-R1-Distill chat template: system text first, no role markers for it, past
# replies without their reasoning (the R1 template's own `content.split('</think>')`, which is also how llama.cpp
# recognises an R1-style template and splits the reasoning), and a generation prompt that opens the reasoning block.
R1_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}" + USER_TOKEN + "{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    + ASSISTANT_TOKEN + "{{ content }}" + EOS_TOKEN +
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT_TOKEN + THINK_OPEN + "\n{% endif %}"
)

# Declarative parser for `transformers serve`: everything up to </think> is reasoning_content.
R1_RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": ASSISTANT_TOKEN,
    "fields": {
        "thinking": {"open": THINK_OPEN, "close": THINK_CLOSE, "content": "text"},
        "content": {"close": EOS_TOKEN, "content": "text"},
    },
}

# Every weight row a multiple of 256, as llama.cpp's K-quants and i-quants need (with 128 they fall back to other
# types and the GGUF schemes would not be what they say).
MODEL_SHAPE = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
}
VOCAB_SIZE = 1024
# The embedding has more rows than the tokenizer has tokens, rounded up to a multiple of this, as the distills pad
# theirs (R1-Distill-Qwen: 152,064 rows for 151,665 tokens): converters and engines expect room for every token.
VOCAB_PADDING = 64
# Qwen2's pre-tokenizer (digits one by one, as the byte-level BPE of the distills), so that a GGUF file can declare
# it (`tokenizer.ggml.pre = qwen2`) and llama.cpp splits text as transformers does.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")


def _training_texts(tokenizer, count: int) -> list[tuple[str, str]]:
    """(prompt, completion) pairs exactly as the engine will see them: the R1 chat prompt, then the reply."""
    from assets.benchmarks.synthetic import training_examples

    pairs = []
    for problem, completion in training_examples(count):
        messages = [{"role": "user", "content": f"{problem}\n{R1_PROMPT_SUFFIX}"}]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        pairs.append((prompt, completion + EOS_TOKEN))
    return pairs


def train_tiny_model(model, tokenizer, steps: int = TRAINING_STEPS, seed: int = 0) -> list[float]:
    """Teach the model the R1 answer format on synthetic arithmetic; loss only on the reply. Returns losses."""
    import torch

    torch.manual_seed(seed)
    pairs = _training_texts(tokenizer, steps * TRAINING_BATCH // 4)
    encoded = []
    for prompt, completion in pairs:
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        encoded.append((prompt_ids + completion_ids, [-100] * len(prompt_ids) + completion_ids))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LEARNING_RATE, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(steps):
        batch = [encoded[i] for i in torch.randint(len(encoded), (TRAINING_BATCH,), generator=generator)]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (token_ids, label_ids) in enumerate(batch):
            ids[row, : len(token_ids)] = torch.tensor(token_ids)
            labels[row, : len(label_ids)] = torch.tensor(label_ids)
            mask[row, : len(token_ids)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _tokenizer_corpus(seed: int) -> list[str]:
    """Text in the shape the model will read and write: problems, reasoning and boxed answers."""
    rng = random.Random(seed)
    words = ("the of and to a in is that for it as with was on be by at this are from or an which one all find "
             "compute what how many total each number sum product answer step reason let so then we therefore "
             "value equal equals more less than twice half times plus minus divided remainder integer positive "
             "real solution problem please final within put boxed").split()
    from assets.benchmarks.synthetic import question, r1_completion

    # The prompt the engine sends, many times over, so its words become single tokens and prompts stay short.
    engine_prompt = (f"{USER_TOKEN}{question('12 + 34')}\n{R1_PROMPT_SUFFIX}{ASSISTANT_TOKEN}{THINK_OPEN}\n"
                     f"{r1_completion('12 + 34', 46)}")
    for token in ADDED_TOKENS:   # matched whole before the BPE sees the text: no merges spent on them
        engine_prompt = engine_prompt.replace(token, "\n")
    lines = [engine_prompt] * 500
    for _ in range(3000):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        op = rng.choice(["+", "-", "*"])
        text = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
        lines.append(f"{text} ${a} {op} {b}$ = \\frac{{{a}}}{{{b + 1}}} \\sqrt{{{a}}} \\boxed{{{a}}} #### {b}")
    return lines


def build_tiny_model(out_dir: Path, seed: int = 0, training_steps: int = TRAINING_STEPS) -> Path:
    """Write the tiny model to `out_dir` (tokenizer, config, trained weights, generation config)."""
    import torch
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_tokenizer_corpus(seed), trainer=trainer)
    bpe.add_tokens([AddedToken(token, special=False, normalized=False) for token in ADDED_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=R1_CHAT_TEMPLATE,
        response_template=R1_RESPONSE_TEMPLATE,
        model_max_length=MODEL_SHAPE["max_position_embeddings"],
    )
    tokenizer.save_pretrained(out_dir)

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    config = Qwen2Config(
        vocab_size=-(-(len(tokenizer) + 1) // VOCAB_PADDING) * VOCAB_PADDING,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        dtype="bfloat16",
        **MODEL_SHAPE,
    )
    model = Qwen2ForCausalLM(config)
    losses = train_tiny_model(model, tokenizer, training_steps, seed) if training_steps else []
    model.to(torch.bfloat16).save_pretrained(out_dir)
    GenerationConfig(
        do_sample=True,
        temperature=0.6,
        top_p=0.95,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    ).save_pretrained(out_dir)
    (out_dir / "yardstick_build.json").write_text(json.dumps({
        "name": TINY_MODEL_NAME, "build_version": TINY_BUILD_VERSION, "seed": seed,
        "training_steps": training_steps, "final_loss": losses[-1] if losses else None,
        "gguf_pre_tokenizer": "qwen2",   # its split rule is Qwen2's (QWEN2_SPLIT): see assets.models.gguf_convert
    }, indent=2))
    return out_dir


def ensure_tiny_model(out_dir: Path, seed: int = 0) -> Path:
    """Build (and train) the tiny model unless an identical build is already in `out_dir`."""
    marker = Path(out_dir) / "yardstick_build.json"
    if marker.exists():
        built = json.loads(marker.read_text())
        if (built.get("build_version"), built.get("seed"), built.get("training_steps")) == (
                TINY_BUILD_VERSION, seed, TRAINING_STEPS):
            return Path(out_dir)
    staging = Path(out_dir).with_name(Path(out_dir).name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    build_tiny_model(staging, seed)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return Path(out_dir)
