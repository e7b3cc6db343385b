import argparse

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--epochs", type=int)
p.add_argument("--optimizer")
p.add_argument("--data")
p.add_argument("--verbose", action="store_true")
p.add_argument("--batch_size", type=int)
args = p.parse_args()
print(vars(args))
