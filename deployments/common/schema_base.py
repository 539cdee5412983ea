"""The pydantic bases every kvfleet body, setting and reply derives from (one definition each).

- ``ClosedModel``: unknown fields are an error naming them (``extra="forbid"``): a typo in a
  config file or a request body is never a silent default.
- ``StrictModel``: closed, and types checked as OpenAI checks them - no string for a number, no
  1 for true (pydantic's lax mode would coerce them).
- ``OpenModel``: a reply object; extra fields allowed, so a reply may carry more than its model
  documents (routes list reply models with ``responses=``, which documents without filtering).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ClosedModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StrictModel(ClosedModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OpenModel(BaseModel):
    model_config = ConfigDict(extra="allow")
