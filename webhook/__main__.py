from webhook.cli.main import app

app()
