"""Which regularizers torch's optimizers already implement, so `reg.impl=optimizer` can hand
them the decay. No torch here: config validation asks this before anything is imported to train.
"""


def has_native_decay(p: float, l1_ratio: float, mode: str, optimizer: str) -> bool:
    """torch's SGD and Adam add weight_decay*w to the gradient (coupled L2); AdamW shrinks w by
    lr*weight_decay before its step (decoupled L2). Both equal our regularizer at p=2, l1_ratio=0.
    """
    if p != 2 or l1_ratio != 0:
        return False
    return (mode == "coupled" and optimizer in ("sgd", "adam")) or (
        mode == "decoupled" and optimizer == "adamw"
    )
