#!/usr/bin/env bash
# Every benchmark in benchmarks/README.md, in order; then the report. Needs ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data
run() { python3 -m benchmarks.decompose_curve --keeps 0.5,0.6,0.7,0.8,0.9 \
  --criteria refit,logodds,activation,random --fidelity 0.99 "$@"; }
run --model models/cnn_digits.onnx --data sklearn:digits
run --model models/mlp1_mnist.onnx --data $D/mnist
run --model models/mlp4_mnist.onnx --data $D/mnist
run --model models/mlp1_fmnist.onnx --data $D/fashion-mnist
run --model models/mlp4_fmnist.onnx --data $D/fashion-mnist
run --model models/lenet5_mnist.onnx --data $D/mnist
run --model $D/onnx-third-party/mnist-cntk.onnx --data $D/mnist --name mnist_cntk_third_party
run --model models/resnet8_fmnist.onnx --data $D/fashion-mnist
C=$D/cifar10-jpg/cifar10-jpg-q75.tar.gz
# timing first, on an idle machine; the curves take about an hour on 2 cores
python3 -m benchmarks.decompose_time --model models/resnet20_cifar10.onnx --data $C --calib 1000
run --model models/resnet20_cifar10.onnx --data $C --criteria refit,activation,random
python3 -m benchmarks.decompose_curve --model models/resnet20_cifar10.onnx --data $C \
  --keeps 0.7,0.75 --criteria refit --compensation sequential --name resnet20_cifar10_sequential
for f in 0.95 0.93; do
  python3 -m benchmarks.decompose_curve --model models/resnet20_cifar10.onnx --data $C \
    --keeps 0.75 --criteria refit --fidelity $f --name resnet20_cifar10_tuned${f/./}
done
python3 -m benchmarks.report > /dev/null
