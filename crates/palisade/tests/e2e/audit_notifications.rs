//! SNS audit notifications, published to a real SNS implementation (moto) on loopback.
