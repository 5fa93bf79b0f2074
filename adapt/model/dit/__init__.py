"""The `wam-dit` family: our own World Action Model, small enough to pretrain on a CPU.

A frame tokenizer (`tokenizer`), a DiT backbone shared by every embodiment (`backbone`), hashed task-text
tokens (`text`), per-embodiment state and action heads (`heads`), joined in `wam.WorldActionModel`; `config`
holds its config type and presets (`tiny`, `small`, `base`). It is one family of `adapt.model.protocol`, beside
`adapt.model.dreamzero`.
"""
