"""engine: model runtime without Ray - model loading (embedded default), press registry,
prefill under a press into a CompressedKV, and decoding from one."""
