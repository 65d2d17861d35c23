"""Training the expression networks: `python train/train.py CONFIG` runs `train.main` (per epoch
`train_one_epoch`, then `evaluate`). `data` builds the training faces and their targets, `autocast`
picks the precision and runs the network in it, `card` writes what an exported model records.
"""
