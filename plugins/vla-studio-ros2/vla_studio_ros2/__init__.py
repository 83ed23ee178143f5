"""VLA Studio's ROS 2 bridge over Zenoh (robot and camera kinds ``ros2``), with no ROS install.

It speaks rmw_zenoh's wire format through zenoh-ros2-sdk, with the message definitions that ship
in ``vla_studio_ros2/messages`` (generated offline from rosbags' ROS 2 Jazzy types).
"""
