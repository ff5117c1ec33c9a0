"""ROS glue: the only modules of the package that import rospy (thin node classes)."""
