"""Reference: one epoch of a two-convolution CNN on 8x8x1 images (the digits' shape) in PyTorch CPU, float32, Adam."""
import sys, time, numpy as np, torch
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1437
bs = int(sys.argv[2]) if len(sys.argv) > 2 else 32
rng = np.random.default_rng(0)
X = torch.from_numpy(rng.standard_normal((n, 1, 8, 8), dtype=np.float32))
y = torch.from_numpy(rng.integers(0, 10, n))
nn = torch.nn
model = nn.Sequential(nn.Conv2d(1, 16, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(16, 32, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(32 * 2 * 2, 32), nn.ReLU(), nn.Linear(32, 10))
opt = torch.optim.Adam(model.parameters(), lr=0.003)
lossf = nn.CrossEntropyLoss()
def epoch():
    perm = torch.randperm(n)
    for i in range(0, n, bs):
        idx = perm[i:i+bs]; opt.zero_grad(); lossf(model(X[idx]), y[idx]).backward(); opt.step()
epoch(); t = time.perf_counter(); epoch(); dt = time.perf_counter() - t
print(f"torch digits cnn bs={bs}: {dt:.3f}s/epoch {n/dt:,.0f} samples/s")
