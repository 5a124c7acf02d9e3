from __future__ import annotations

import torch

# The engine tests are small; two threads match the CI machine and avoid oversubscription.
torch.set_num_threads(2)
