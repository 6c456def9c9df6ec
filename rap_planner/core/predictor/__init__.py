"""Learned multi-modal trajectory prediction (ROS-free): model, training, evaluation and runtime."""
