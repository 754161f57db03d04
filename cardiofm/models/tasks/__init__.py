"""Task models: one `CardioFMForX` per task (diagnosis, vitals, reconstruction, qa, target), each the shared encoder
plus a head, and the head building blocks they share (`heads`). May import cardiofm.data (channels, preprocessing,
beats) and cardiofm.models; never files, recipes or the engine."""
