"""The field lists of docs/interfaces.md have one meaning everywhere: analysis (which may not import torch)
keeps its own copy, which must equal the trainer's."""
from analysis import schema
from qgan.train import BOOKKEEPING, QCBM_ONLY, TrialConfig
from sweeps import presets


def test_analysis_field_lists_equal_the_trainers():
    assert set(schema.QCBM_ONLY_FIELDS) == set(QCBM_ONLY)
    assert set(schema.BOOKKEEPING_FIELDS) - {"trial_id"} == set(BOOKKEEPING)


def test_every_listed_field_is_a_trial_config_field():
    fields = set(TrialConfig().to_dict())
    assert set(QCBM_ONLY) <= fields and set(BOOKKEEPING) <= fields
    assert presets.QCBM_ONLY is QCBM_ONLY and presets.BOOKKEEPING is BOOKKEEPING
