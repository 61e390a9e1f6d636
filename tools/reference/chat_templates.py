#!/usr/bin/python3
"""Renders the chat templates of widely used instruct models, and small templates exercising each
construct Encore's Jinja interpreter implements, with real Jinja2, and writes the outputs to
tests/Encore.Generation.Tests/Fixtures/chat_templates.json, which the C# tests compare byte for byte.

The environment is the one transformers' apply_chat_template renders in
(transformers/utils/chat_template_utils.py): an ImmutableSandboxedEnvironment with trim_blocks and
lstrip_blocks, the loopcontrols extension, a tojson filter that keeps non-ASCII text and key order
(json.dumps with ensure_ascii=False), and raise_exception as a global. The variables are messages,
tools=None, documents=None, add_generation_prompt and the checkpoint's bos_token/eos_token (left out
where the checkpoint has none, as transformers leaves them out of special_tokens_map). strftime_now
is not defined, so templates that probe it (Llama 3.2) fall back to their own fixed date and the
outputs do not depend on the day they are made.

The templates are in tools/reference/chat_templates/, each the chat_template string of the model's
tokenizer_config.json on the Hugging Face Hub, decoded from JSON; the two named llama.cpp-* are
llama.cpp's reformatted copies (ggml-org/llama.cpp, models/templates/), and Qwen3's was taken from
a JavaScript copy with its Jinja escapes already decoded (the same text out).

Run with Debian's python3-jinja2 (apt-get install python3-jinja2):
    /usr/bin/python3 tools/reference/chat_templates.py
"""
import json
import os

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "chat_templates")
OUT = os.path.join(HERE, "../../tests/Encore.Generation.Tests/Fixtures/chat_templates.json")

# file name -> (Hub id, bos_token, eos_token); None: the checkpoint names no such token.
MODELS = {
    "meta-llama-Meta-Llama-3-8B-Instruct.jinja": ("meta-llama/Meta-Llama-3-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>"),
    "meta-llama-Llama-3.1-8B-Instruct.jinja": ("meta-llama/Llama-3.1-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>"),
    "Qwen-Qwen2-0.5B-Instruct.jinja": ("Qwen/Qwen2-0.5B-Instruct", None, "<|im_end|>"),
    "Qwen-Qwen2.5-0.5B-Instruct.jinja": ("Qwen/Qwen2.5-0.5B-Instruct", None, "<|im_end|>"),
    "mistralai-Mistral-7B-Instruct-v0.3.jinja": ("mistralai/Mistral-7B-Instruct-v0.3", "<s>", "</s>"),
    "google-gemma-2-2b-it.jinja": ("google/gemma-2-2b-it", "<bos>", "<eos>"),
    "microsoft-Phi-3-mini-4k-instruct.jinja": ("microsoft/Phi-3-mini-4k-instruct", "<s>", "<|endoftext|>"),
    "microsoft-Phi-3.5-mini-instruct.jinja": ("microsoft/Phi-3.5-mini-instruct", "<s>", "<|endoftext|>"),
    "HuggingFaceH4-zephyr-7b-beta.jinja": ("HuggingFaceH4/zephyr-7b-beta", "<s>", "</s>"),
    "HuggingFaceTB-SmolLM2-135M-Instruct.jinja": ("HuggingFaceTB/SmolLM2-135M-Instruct", "<|im_start|>", "<|im_end|>"),
    # Taken from a JavaScript string, its Jinja escapes ("\n") already decoded to the characters: the same output.
    "Qwen-Qwen3-0.6B.jinja": ("Qwen/Qwen3-0.6B", None, "<|im_end|>"),
    # llama.cpp's reformatted copies (ggml-org/llama.cpp models/templates/): the same constructs, laid out on lines.
    "llama.cpp-deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B (llama.cpp's copy)", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "llama.cpp-microsoft-Phi-4-mini-instruct.jinja": ("microsoft/Phi-4-mini-instruct (llama.cpp's copy)", "<|endoftext|>", "<|endoftext|>"),
}


def m(role, content):
    return {"role": role, "content": content}


CONVERSATIONS = {
    "user": [m("user", "Hello!")],
    "system-user": [m("system", "You are a terse assistant."), m("user", "What is 2+2?")],
    "multi-turn": [
        m("system", "  Answer in French.\n"),
        m("user", "Name a cheese.  "),
        m("assistant", "\n Brie. "),
        m("user", "Ça coûte 5 € — naïve café?"),
    ],
    "no-system": [m("user", "hi"), m("assistant", "hello"), m("user", "bye")],
    "awkward-text": [m("user", "{{ not a tag }} {% neither %} \\n \"quotes\" 'single' \t tab\nnew line")],
    "empty-system": [m("system", ""), m("user", "x")],
    "two-users": [m("user", "one"), m("user", "two")],
    "ends-with-assistant": [m("user", "Start"), m("assistant", "Once upon")],
    "reasoning": [m("system", "Think first."), m("user", "2+2?"), m("assistant", "<think>two and two</think>4"), m("user", "3+3?")],
}


# Small templates, one construct or a few each, with the variables they render with.
CONSTRUCTS = [
    ("{{ 'a' ~ 1 ~ none ~ true }}", {}),
    ("{{ 1 + 2 * 3 - 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}", {}),
    ("{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 3.0 }} {{ 1_000 }} {{ 10 / 4 }} {{ 4 / 2 }}", {}),
    ("{{ [1, 'a', none, true, 1.5, {'k': [2]}, ('t',)] }}", {}),
    ("{{ \"it's\" }} {{ ['it\\'s', \"q\\\"\", 'back\\\\slash', 'nl\\n'] }}", {}),
    ("{{ 'a\\tb\\x41\\u00e9' }}|{{ 'con' 'cat' }}", {}),
    ("{% if x %}yes{% elif y %}y{% else %}no{% endif %}", {"x": 0, "y": ""}),
    ("{% if x %}yes{% elif y %}y{% else %}no{% endif %}", {"x": [], "y": [0]}),
    ("{{ not x }} {{ x and y }} {{ x or y }} {{ x or 'd' }} {{ 1 < 2 < 3 }} {{ 3 > 2 == 2 }}", {"x": None, "y": 5}),
    ("{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' != 'b' }} {{ [1, 2] == [1, 2] }} {{ {'a': 1} == {'a': 1} }} {{ 'b' >= 'a' }}", {}),
    ("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }} {{ not 'k' in d }}", {"d": {"k": 1}}),
    ("{{ x is defined }} {{ y is undefined }} {{ x is none }} {{ x is not none }} {{ s is string }} {{ n is number }} {{ d is mapping }} {{ l is iterable }} {{ s is iterable }}",
     {"x": None, "s": "t", "n": 3, "d": {}, "l": []}),
    ("{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 'a' is equalto 'a' }} {{ 1 is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ 1 is sameas 1 }}", {}),
    ("{{ m['role'] }} {{ m.content }} {{ m.missing is defined }} {{ l[0] }} {{ l[-1] }} {{ l[5] is defined }} {{ s[1] }}",
     {"m": {"role": "user", "content": "c"}, "l": [1, 2, 3], "s": "xyz"}),
    ("{{ l[1:] }} {{ l[:-1] }} {{ l[::2] }} {{ l[::-1] }} {{ s[1:3] }} {{ s[-2:] }} {{ l[5:] }}", {"l": [1, 2, 3, 4], "s": "hello"}),
    ("{{ '  a b \\n'|trim }}|{{ 'xxaxx'|trim('x') }}|{{ l|length }} {{ s|length }} {{ d|length }} {{ u|length }}",
     {"l": [1, 2], "s": "héllo", "d": {"a": 1}}),
    ("{{ 'aBc'|upper }} {{ 'aBc'|lower }} {{ 'hELLO wORLD'|capitalize }} {{ 'hello big world'|title }}", {}),
    ("{{ u|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ none|default('d') }} {{ u|d('e') }}", {}),
    ("{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ l|first }} {{ l|last }} {{ 'abc'|first }} {{ l|join(', ') }} {{ l|join }}", {"l": [1, 2, 3]}),
    ("{{ d|tojson }} {{ l|tojson }} {{ 'é\"\\n'|tojson }} {{ none|tojson }} {{ 1.5|tojson }} {{ true|tojson }}",
     {"d": {"b": 1, "a": [1, "x", None]}, "l": []}),
    ("{{ d|tojson(indent=2) }}", {"d": {"name": "f", "parameters": {"type": "object", "required": ["x"]}}}),
    ("{% for k, v in d|items %}{{ k }}={{ v }};{% endfor %} {% for k, v in d.items() %}{{ k }}{% endfor %} {{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} {{ d.get('z', 0) }}",
     {"d": {"a": 1, "b": 2}}),
    ("{{ '  x  '.strip() }}|{{ 'xyx'.strip('x') }}|{{ ' a'.lstrip() }}|{{ 'a '.rstrip() }}|{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith('bc') }} {{ 'abc'.startswith(('x', 'a')) }}", {}),
    ("{{ ' a  b '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.split(' ', 1) }} {{ 'Ab'.upper() }} {{ 'Ab'.lower() }} {{ 'a-b'.replace('-', '+') }} {{ 'ab'.title() }} {{ 'x'.capitalize() }}", {}),
    ("{{ ', '.join(['a', 'b']) }} {{ 'abcb'.find('b') }} {{ 'a</think>b'.split('</think>')[-1] }}", {}),
    ("{% for x in l %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }};{% endfor %}", {"l": ["a", "b", "c"]}),
    ("{% for x in l %}{{ loop.previtem is defined }}{{ loop.nextitem | default('-') }}{% endfor %}", {"l": ["a", "b"]}),
    ("{% for x in l if x > 1 %}{{ x }}{{ loop.index }}{{ loop.last }};{% endfor %}", {"l": [1, 2, 3]}),
    ("{% for x in l %}{{ x }}{% else %}empty{% endfor %}", {"l": []}),
    ("{% for a in [1, 2] %}{% for b in [3, 4] %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.last }}{% endfor %}", {}),
    ("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("{% for c in 'ab' %}{{ c }}{% endfor %} {% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %} {% for i in range(3) %}{{ i }}{% endfor %} {% for i in range(1, 7, 2) %}{{ i }}{% endfor %}", {}),
    ("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}|{{ x }}", {}),
    ("{% set ns = namespace(total=0, seen=false) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% set ns.seen = true %}{% endfor %}{{ ns.total }} {{ ns.seen }}", {}),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set t = (1, 2) %}{{ t }} {% set e = [] %}{{ e }}", {}),
    ("{% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}]", {}),
    ("{{ 'y' if x else 'n' }} {{ 'y' if not x else 'n' }} [{{ 'y' if x }}]", {"x": False}),
    ("{{ l|selectattr('role', 'equalto', 'user')|list|length }} {{ l|rejectattr('role', 'equalto', 'user')|map(attribute='content')|join(',') }}",
     {"l": [m("user", "a"), m("assistant", "b"), m("user", "c")]}),
    ("{{ l|reject('equalto', 'b')|join(',') }} {{ l|select('equalto', 'b')|list }} {{ l|reverse|join }} {{ l|map('upper')|join }}", {"l": ["a", "b", "c"]}),
    ("{{ 5|string ~ '!' }} {{ '42'|int + 1 }} {{ '1.5'|float }} {{ -3|abs }} {{ 2.7|int }} {{ 'x'|int }}", {}),
    ("{{ -x }} {{ +x }} {{ not not x }} {{ (1, 2)[1] }} {{ [1, [2, 3]][1][0] }} {{ {'a': {'b': 'c'}}.a.b }}", {"x": 4}),
    ("{{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1] + [2] }} {{ 'a' + 'b' }}", {}),
    ("{{ True }} {{ False }} {{ None }} {{ true }} {{ none is none }}", {}),
    ("a\n  {% if true %}\n  b\n  {% endif %}\n c {{- ' d' }} {# c #}\nz {{ 'e' -}}   \n  f\n", {}),
    ("  {%- if true -%}  x  {%- endif -%}  \n{{ 'y' }}  {%+ if true %} keep{% endif +%}\nw", {}),
    ("{% raw %}{{ not rendered }}{% endraw %} {# comment {{ x }} #}done", {}),
    ("line1\r\nline2\r{{ 'x' }}\n", {}),
    ("{% for m in messages %}{% if m.role == 'user' %}{{ m.content|trim }}{% endif %}{% endfor %}", {"messages": [m("user", " q "), m("assistant", "a")]}),
    ("{{ raise_exception('Only user and assistant roles are supported!') }}", {}),
    ("{{ x.y.z }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 1 / 0 }}", {}),
]


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' own tojson filter: Jinja's would escape HTML characters and sort the keys.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def render(env, source, variables):
    """{"output": text} or {"error": message} (raise_exception's message; other errors their type and text)."""
    try:
        return {"output": env.from_string(source).render(**variables)}
    except jinja2.exceptions.TemplateSyntaxError as e:
        return {"error": f"TemplateSyntaxError: {e.message}", "syntax": True}
    except jinja2.exceptions.UndefinedError as e:
        return {"error": f"UndefinedError: {e.message}"}
    except jinja2.exceptions.TemplateError as e:
        return {"error": e.message, "raised": True}
    except (TypeError, ValueError, ZeroDivisionError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    env = environment()
    templates = []
    renders = []
    for file, (hub_id, bos, eos) in MODELS.items():
        with open(os.path.join(TEMPLATES, file), encoding="utf-8") as f:
            source = f.read()
        templates.append({"name": hub_id, "template": source, "bos_token": bos, "eos_token": eos})
        for conv, messages in CONVERSATIONS.items():
            for agp in (True, False):
                variables = {"messages": messages, "tools": None, "documents": None, "add_generation_prompt": agp}
                if bos is not None:
                    variables["bos_token"] = bos
                if eos is not None:
                    variables["eos_token"] = eos
                renders.append({"template": hub_id, "conversation": conv, "add_generation_prompt": agp, **render(env, source, variables)})
    constructs = [{"template": src, "variables": variables, **render(env, src, variables)} for src, variables in CONSTRUCTS]
    fixture = {
        "generator": f"tools/reference/chat_templates.py with Jinja2 {jinja2.__version__} (trim_blocks, lstrip_blocks, transformers' tojson and raise_exception)",
        "templates": templates,
        "conversations": CONVERSATIONS,
        "renders": renders,
        "constructs": constructs,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    errors = sum(1 for r in renders if "error" in r)
    print(f"{OUT}: {len(templates)} templates, {len(renders)} renders ({errors} refused), {len(constructs)} constructs")


if __name__ == "__main__":
    main()
