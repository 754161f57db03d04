"""ECG question answering: the ECG-QA recipe (`recipe`: data, training, exact-match evaluation). May import
cardiofm.data, cardiofm.models and cardiofm.engine."""
