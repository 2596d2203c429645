"""Drawing: the annotators that paint ``Instances`` onto an image, colours, and plots."""
