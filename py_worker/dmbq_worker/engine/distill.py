"""Knowledge distillation from a frozen full-precision teacher (Configure.distill).

    loss = (1 - alpha) * CE(student, y) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The T^2 keeps the soft term's gradient on the scale of the hard one's (Hinton et al., 2015). The teacher runs in
eval mode (running BatchNorm statistics), without gradients, inside the training step (so inside its CUDA graph),
under the same autocast as the student; it is not part of the model, the optimizer or the checkpoints: a resumed run
loads it again from Configure.distill.teacher_weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_ALPHA = 0.5
DEFAULT_TEMPERATURE = 4.0


def distillation_loss(student: Tensor, teacher: Tensor, targets: Tensor, alpha: float, temperature: float) -> Tensor:
    """(1 - alpha) * CE + alpha * T^2 * KL(p_teacher || p_student), both at temperature T, in float32."""
    s, t = student.float(), teacher.float()
    hard = F.cross_entropy(s, targets)
    soft = F.kl_div(F.log_softmax(s / temperature, dim=1), F.log_softmax(t / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return (1.0 - alpha) * hard + alpha * (temperature * temperature) * soft


@dataclass
class Distiller:
    """The frozen teacher and the loss's weights: alpha in (0, 1] and temperature > 0, which the service checks,
    naming the Configure field."""

    teacher: nn.Module
    alpha: float = DEFAULT_ALPHA
    temperature: float = DEFAULT_TEMPERATURE

    def __post_init__(self) -> None:
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def loss(self, x: Tensor, student_out: Tensor, targets: Tensor, autocast_bf16: bool) -> Tensor:
        with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast_bf16,
                                             cache_enabled=False):
            teacher_out = self.teacher(x)
        return distillation_loss(student_out, teacher_out, targets, self.alpha, self.temperature)
