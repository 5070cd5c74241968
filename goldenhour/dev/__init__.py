"""The development harness: the embedded broker and database, local Twilio, SMTP and webhook
servers, the dev system and its London directory. Never imported by the product."""
