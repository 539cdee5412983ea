"""The README/docs block extractor (tests/doc_blocks.py) and the docs' own hygiene, without Ray:
every block is tagged, skipped blocks say why, data blocks parse. Running the code blocks against
a live app is tests/e2e/test_docs_run.py."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.doc_blocks import NOT_CODE, PARSED, RUNNABLE, all_blocks, blocks_in, pointed_at

SAMPLE = """# t
```bash
echo hi
```
<!-- doc-test: skip needs kubectl -->
```sh
kubectl get pods
```
````python
```not a fence```
print(1)
````
```
untagged
```
"""


def test_blocks_tags_and_skip_markers_are_read():
    blocks = blocks_in(SAMPLE, "x.md")
    assert [(b.line, b.lang, b.skip) for b in blocks] == [(2, "bash", None), (6, "sh", "needs kubectl"),
                                                         (9, "python", None), (13, "", None)]
    assert blocks[2].code == "```not a fence```\nprint(1)\n"


def test_the_documented_address_is_pointed_at_the_live_app():
    code = "curl -s localhost:8000/v1/models; BASE = 'http://127.0.0.1:8000'; other = 'localhost:80001'"
    assert pointed_at(code, "127.0.0.1:8317") == (
        "curl -s 127.0.0.1:8317/v1/models; BASE = 'http://127.0.0.1:8317'; other = 'localhost:80001'")


@pytest.mark.parametrize("block", all_blocks(), ids=lambda b: b.id)
def test_every_doc_block_is_tagged_and_data_parses(block):
    known = set(RUNNABLE) | PARSED | NOT_CODE
    assert block.lang in known, (f"{block.id}: tag the block with one of {sorted(known)} "
                                 "(docs/doc-tests.md)")
    if block.lang == "json":
        try:
            json.loads(block.code)
        except json.JSONDecodeError:
            for line in filter(str.strip, block.code.splitlines()):
                json.loads(line)  # one JSON document per line
    if block.lang == "yaml":
        yaml.safe_load(block.code)
    if block.lang in RUNNABLE and block.skip is None:
        assert "curl" not in block.code or "Content-Type: application/json" in block.code or " -d " not in block.code, \
            f"{block.id}: a curl that sends JSON needs -H 'Content-Type: application/json'"
