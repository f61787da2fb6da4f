"""PyTorch idioms of a training loop that minidl spells otherwise (docs/porting.md): ``opt.param_groups`` is an
``AttributeError`` naming ``opt.lr``; ``get_last_lr()`` is a float."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md

OPTIMIZERS = [md.SGD, md.Adam, md.AdamW, md.Adamax, md.NAdam, md.RAdam, md.RMSprop, md.Adagrad, md.Adadelta, md.Rprop]


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_param_groups_names_opt_lr(cls) -> None:
    opt = cls([md.Parameter(np.zeros(2))], lr=0.1)
    with pytest.raises(AttributeError, match=rf"^{cls.__name__} has no param_groups: minidl's optimizers have no "
                                             r"parameter groups; PyTorch's opt.param_groups\[0\]\['lr'\] is opt.lr "
                                             r"\(read and set\), the other hyper-parameters are in opt.hyper "
                                             r"\(docs/optimizers.md, docs/porting.md\)$"):
        opt.param_groups[0]["lr"]
    assert not hasattr(opt, "param_groups")  # (code that checks for it takes the minidl path)


def test_get_last_lr_is_a_float() -> None:
    opt = md.SGD([md.Parameter(np.zeros(2))], lr=0.1)
    sched = md.StepLR(opt, 1, gamma=0.5)
    sched.step()
    assert type(sched.get_last_lr()) is float and sched.get_last_lr() == opt.lr == 0.05
