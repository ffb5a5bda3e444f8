"""Write the tf_keras ``.h5`` files (and tf_keras' outputs) that test_keras_files_legacy.py reads.

They let the legacy Keras 2 format be tested where TensorFlow is not installed (CI). Run
where tf_keras is installed, from the repository root:

    python tests/interop/data/make_tf_keras_files.py

Each model of tests/interop/test_keras_files_tf_keras.py is saved as ``tf_keras_<name>.h5`` and its
inputs and tf_keras' predictions as ``tf_keras_<name>.npz`` (``x0``, ``x1``, ... and
``y0``, ``y1``, ...).
"""

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    from test_keras_files_tf_keras import MODELS

    rng = np.random.default_rng(2)
    for name in ("functional", "merge_modes_and_states"):
        model, inputs = MODELS[name]()
        model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
        x = inputs(rng)
        y = model.predict(x, verbose=0)
        xs, ys = (x if isinstance(x, list) else [x]), (y if isinstance(y, list) else [y])
        model.save(HERE / f"tf_keras_{name}.h5")
        np.savez(HERE / f"tf_keras_{name}.npz", **{f"x{i}": a for i, a in enumerate(xs)},
                 **{f"y{i}": a for i, a in enumerate(ys)})


if __name__ == "__main__":
    main()
