"""What a run shows people: Markdown, the terminal, the HTML report and its plots, tables read back, number formatting, the CI gate and the results schema."""
