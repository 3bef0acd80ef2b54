"""The report's sections: one module per part of the document, each a mixin of ``ReportView``."""
